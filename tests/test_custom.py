"""recipes/Custom: your own corpus (German labels, a label map, speaker-disjoint k-fold), trained by the registry."""

import csv
import importlib.util
import json

import pytest
from sklearn.model_selection import StratifiedGroupKFold

from speechbrain_ext.utils.hyperparams import plain_values
from tests.conftest import REPO

BASELINE = (
    "recipes/Custom/hparams/baseline.yaml"  # registry row: --n_folds=3 --fold=2 --label_map={Ärger: Wut, Ekel: drop}
)
USER_LABELS = ["Freude", "Trauer", "Wut", "neutral"]  # Ärger merged into Wut, Ekel dropped


def test_custom_run_reports_the_users_labels_on_speaker_disjoint_folds(registry_runs, registry_corpora):
    folder = registry_runs[BASELINE]["folder"]
    report = json.loads((folder / "test_report.json").read_text(encoding="utf-8"))
    assert report["labels"] == USER_LABELS
    assert "| Freude | Trauer | Wut | neutral |" in (folder / "test_report.md").read_text(encoding="utf-8")
    assert plain_values(folder / "hyperparams.yaml")["n_classes"] == 4  # counted from the data, recorded for export

    manifests = {s: json.loads((folder / "prep" / f"{s}.json").read_text()) for s in ("train", "valid", "test")}
    speakers = {s: {e["speaker"] for e in m.values()} for s, m in manifests.items()}
    assert not (speakers["train"] & speakers["valid"] or speakers["train"] & speakers["test"])
    assert not speakers["valid"] & speakers["test"]
    assert {e["emo"] for m in manifests.values() for e in m.values()} == set(USER_LABELS)
    assert all(e["emo"] == "Wut" for m in manifests.values() for e in m.values() if e["emo_original"] == "Ärger")

    # fold 2 of 3 tests the speakers sklearn's StratifiedGroupKFold puts in its second test fold
    with open(registry_corpora["Custom"] / "listing.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] != "Ekel"]
    labels = ["Wut" if r["label"] == "Ärger" else r["label"] for r in rows]
    groups = [r["speaker"] for r in rows]
    folds = list(StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=1986).split(rows, labels, groups))
    assert speakers["test"] == {groups[i] for i in folds[1][1]}
    assert speakers["train"] | speakers["valid"] | speakers["test"] == set(groups)


def recipe_module(name: str):
    """A recipe script of recipes/Custom loaded as a module (its functions, not its command line)."""
    spec = importlib.util.spec_from_file_location(f"custom_{name}", REPO / "recipes/Custom" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_listing_stops_the_recipe_naming_its_lines(tmp_path):
    """train.py's preparation step ends the run with one error naming each bad line (no traceback, nothing trained)."""
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "listing.csv").write_text("path,label,speaker\na.wav,Freude,anna\nmissing.wav,Wut,ben\n,Wut,ben\n")
    values = plain_values(REPO / BASELINE, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "run")})
    with pytest.raises(SystemExit) as stopped:
        recipe_module("train").prepare(values)
    lines = str(stopped.value).splitlines()
    assert lines[0].startswith(f"error: {tmp_path / 'listing.csv'}: 2 problem(s)")
    assert "line 3" in lines[1] and "missing.wav" in lines[1] and "line 4" in lines[2]


def test_run_folds_counts_the_listings_speakers_for_loso(tmp_path):
    run_folds = recipe_module("run_folds")
    (tmp_path / "listing.csv").write_text("path,label,speaker\na.wav,x,anna\nb.wav,y,ben\nc.wav,x,chloé\nd.wav,y,ben\n")
    values = {"n_folds": 4, "protocol": "loso", "data_folder": str(tmp_path), "listing": "listing.csv"}
    assert run_folds.folds_per_protocol({**values, "from_folders": False}) == {"kfold": 4, "given": 1, "loso": 3}
