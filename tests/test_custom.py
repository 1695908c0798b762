"""recipes/Custom: your own corpus (German labels, a label map, speaker-disjoint k-fold), trained by the registry."""

import csv
import importlib.util
import json
import subprocess
import sys

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


def test_bad_listing_fails_naming_its_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "listing.csv").write_text("path,label,speaker\na.wav,Freude,anna\nmissing.wav,Wut,ben\n,Wut,ben\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "recipes/Custom/train.py"),
            str(REPO / BASELINE),
            f"--data_folder={tmp_path}",
            f"--output_folder={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()
    assert error[0].startswith("error: ") and "listing.csv" in error[0]
    assert any("line 3" in line and "missing.wav" in line for line in error)
    assert any("line 4" in line for line in error)
    assert not (tmp_path / "run" / "save" / "label_encoder.txt").exists()  # nothing built


def test_run_folds_counts_the_listings_speakers_for_loso(tmp_path):
    spec = importlib.util.spec_from_file_location("custom_run_folds", REPO / "recipes/Custom/run_folds.py")
    run_folds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_folds)
    (tmp_path / "listing.csv").write_text("path,label,speaker\na.wav,x,anna\nb.wav,y,ben\nc.wav,x,chloé\nd.wav,y,ben\n")
    values = {"n_folds": 4, "protocol": "loso", "data_folder": str(tmp_path), "listing": "listing.csv"}
    assert run_folds.folds_per_protocol({**values, "from_folders": False}) == {"kfold": 4, "given": 1, "loso": 3}
