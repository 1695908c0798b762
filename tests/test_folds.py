"""The fold runner with a stand-in train.py that writes reports instantly: layout, skipping, directions, aggregation."""

import json
import re
import runpy
import textwrap

import numpy as np
import pandas as pd
import pytest

from speechbrain_ext.training.folds import main
from tests.conftest import REPO

FAKE_TRAIN = """
import json, os, pathlib, sys
from hyperpyyaml import resolve_references
from ruamel.yaml import YAML

overrides = {a[2:].split("=", 1)[0]: a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("--") and "=" in a}
with open(sys.argv[1]) as handle:
    values = YAML(typ="rt").load(resolve_references(handle, "\\n".join(f"{k}: {v}" for k, v in overrides.items())).getvalue())
out = pathlib.Path(str(values["output_folder"]))
out.mkdir(parents=True, exist_ok=True)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(overrides) + "\\n")
score = 0.5 + 0.01 * int(values.get("fold", 1)) + (0.1 if values.get("valid_gender") == "M" else 0.0) + 0.001 * (int(values["seed"]) % 7)
if values.get("task_kind") == "regression":
    report = {"n": 0, "n_predicted": 4, "summary_metrics": []}
    (out / "valid_report.json").write_text(json.dumps({"n": 6, "mean_spearman": score - 0.2, "mean_CCC": 0.1, "MSE": 0.05, "summary_metrics": ["mean_spearman", "mean_CCC", "MSE"]}))
else:
    report = {"n": 10, "UAR": score, "WA": score + 0.01, "summary_metrics": ["UAR", "WA"]}
(out / "test_report.json").write_text(json.dumps(report))
"""

YAML = """
seed: 1986
data_folder: !PLACEHOLDER
protocol: loso
fold: 1
valid_gender: F
task_kind: classification
number_of_epochs: 1
output_folder: !ref results/{corpus}/seg/<protocol>/fold_<fold>/valid_<valid_gender>/seed_<seed>
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """A corpus folder with the fake train.py, a YAML, and the call log; cwd is tmp_path (results/ lands there)."""
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))

    def make(corpus="IEMOCAP", yaml=YAML):
        folder = tmp_path / corpus
        folder.mkdir(exist_ok=True)
        (folder / "train.py").write_text(FAKE_TRAIN)
        (folder / "seg.yaml").write_text(textwrap.dedent(yaml.format(corpus=corpus)))
        return folder

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []

    return make, calls, tmp_path


def test_iemocap_loso_runs_both_directions_and_aggregates(recipe, capsys):
    make, calls, root = recipe
    folder = make()
    argv = [str(folder / "seg.yaml"), f"--data_folder={root}"]
    main(folder / "train.py", {"loso": 5}, argv, directions={"loso": ["F", "M"]})
    runs = calls()
    assert sorted((c["fold"], c["valid_gender"]) for c in runs) == sorted(
        (str(k), g) for k in range(1, 6) for g in "FM"
    )
    table = pd.read_csv(root / "results/IEMOCAP/seg/loso/results.csv", keep_default_na=False)
    scores = [0.5 + 0.01 * k + (0.1 if g == "M" else 0.0) + 0.001 * (1986 % 7) for k in range(1, 6) for g in "FM"]
    mean = table[(table["fold"] == "mean") & (table["valid"] == "")].iloc[0]
    std = table[table["fold"] == "std"].iloc[0]
    assert float(mean["UAR"]) == pytest.approx(np.mean(scores), abs=1e-6) and float(std["UAR"]) == pytest.approx(
        np.std(scores, ddof=1), abs=1e-6
    )
    per_direction = table[(table["fold"] == "mean") & (table["valid"] == "M")].iloc[0]
    assert float(per_direction["UAR"]) == pytest.approx(np.mean(scores[1::2]), abs=1e-6)
    assert (root / "results/IEMOCAP/seg/loso/fold_3/valid_M/seed_1986/test_report.json").is_file()
    main(folder / "train.py", {"loso": 5}, argv, directions={"loso": ["F", "M"]})
    assert len(calls()) == 10 and capsys.readouterr().out.count("finished earlier, skipped") == 10


def test_iemocap_session_protocol_runs_five_folds_once(recipe):
    """IEMOCAP's run_folds.py: ``session`` (the segment_triplet and w2v2_info_recovery YAMLs' default) is 5 folds, one run each."""
    make, calls, root = recipe
    folder = make()
    iemocap = runpy.run_path(str(REPO / "recipes/IEMOCAP/run_folds.py"), run_name="not_main")
    main(
        folder / "train.py",
        iemocap["FOLDS_PER_PROTOCOL"],
        [str(folder / "seg.yaml"), f"--data_folder={root}", "--protocol=session"],
        iemocap["DIRECTIONS"],
    )
    assert [(c["fold"], c["protocol"], "valid_gender" in c) for c in calls()] == [
        (str(k), "session", False) for k in range(1, 6)
    ]
    table = pd.read_csv(root / "results/IEMOCAP/seg/session/results.csv", keep_default_na=False)
    assert list(table["fold"]) == ["1", "2", "3", "4", "5", "mean", "std"]
    for method in ("baseline", "seg", "triplet", "triplet_seg"):
        assert (
            re.search(r"^protocol: (\S+)", (REPO / f"recipes/IEMOCAP/hparams/{method}.yaml").read_text(), re.M).group(1)
            == "session"
        )


def test_a_chain_yaml_names_its_own_script(recipe):
    """A YAML with recipe_script (FLEA's train_flea.py) is run by that script; a finished chain is skipped."""
    make, calls, root = recipe
    folder = make(yaml=YAML + "recipe_script: chain.py\n")
    (folder / "chain.py").write_text(
        FAKE_TRAIN.replace("log.write(json.dumps(overrides)", 'log.write(json.dumps({**overrides, "script": "chain"})')
    )
    argv = [str(folder / "seg.yaml"), f"--data_folder={root}", "--folds", "1,2", "--valid_gender", "F"]
    main(folder / "train.py", {"loso": 5}, argv, directions={"loso": ["F", "M"]})
    assert [(c["fold"], c["script"]) for c in calls()] == [("1", "chain"), ("2", "chain")]
    run = root / "results/IEMOCAP/seg/loso/fold_3/valid_F/seed_1986"  # a chain finished outside run_folds
    run.mkdir(parents=True)
    (run / "chain_complete.json").write_text("{}")
    (run / "test_report.json").write_text(
        json.dumps({"n": 10, "UAR": 0.9, "WA": 0.9, "summary_metrics": ["UAR", "WA"]})
    )
    main(
        folder / "train.py",
        {"loso": 5},
        [*argv[:2], "--folds", "3", "--valid_gender", "F"],
        directions={"loso": ["F", "M"]},
    )
    assert len(calls()) == 2


def test_single_direction_flag(recipe):
    make, calls, root = recipe
    folder = make()
    main(
        folder / "train.py",
        {"loso": 5},
        [str(folder / "seg.yaml"), f"--data_folder={root}", "--valid_gender", "M"],
        directions={"loso": ["F", "M"]},
    )
    assert {c["valid_gender"] for c in calls()} == {"M"} and len(calls()) == 5


def test_a_run_made_by_train_py_is_found_and_skipped(recipe, capsys):
    """The run folder is the YAML's own output_folder: a finished single run is not trained again."""
    make, calls, root = recipe
    folder = make()
    run = root / "results/IEMOCAP/seg/loso/fold_2/valid_F/seed_1986"
    run.mkdir(parents=True)
    (run / "test_report.json").write_text(
        json.dumps({"n": 10, "UAR": 0.9, "WA": 0.9, "summary_metrics": ["UAR", "WA"]})
    )
    (run / "hyperparams.yaml").write_text("number_of_epochs: 1\n")
    (run / "train_log.txt").write_text("epoch: 1, lr: 1e-4 - train loss: 1.0\n")
    main(
        folder / "train.py",
        {"loso": 5},
        [str(folder / "seg.yaml"), f"--data_folder={root}", "--folds", "1,2", "--valid_gender", "F"],
        directions={"loso": ["F", "M"]},
    )
    assert [c["fold"] for c in calls()] == ["1"]
    assert "fold 2, valid F, seed 1986 (2/2): finished earlier (by train.py), skipped" in capsys.readouterr().out


def test_one_fixed_split_rejects_folds(recipe, capsys):
    make, _, root = recipe
    folder = make("RAVDESS", YAML.replace("fold_<fold>/valid_<valid_gender>/", ""))
    with pytest.raises(SystemExit):
        main(folder / "train.py", None, [str(folder / "seg.yaml"), f"--data_folder={root}", "--folds", "1,3"])
    assert "RAVDESS has one fixed split; use --seeds" in capsys.readouterr().err


def test_masked_test_split_aggregates_devel_regression_metrics(recipe):
    make, calls, root = recipe
    folder = make(
        "Hume-Prosody",
        YAML.replace("task_kind: classification", "task_kind: regression").replace(
            "fold_<fold>/valid_<valid_gender>/", ""
        ),
    )
    markdown = main(folder / "train.py", None, [str(folder / "seg.yaml"), f"--data_folder={root}", "--seeds", "1,2,3"])
    assert len(calls()) == 3 and "devel (the test split has no labels)" in markdown
    table = pd.read_csv(root / "results/Hume-Prosody/seg/results.csv", keep_default_na=False)
    values = [0.5 + 0.01 + 0.001 * s - 0.2 for s in (1, 2, 3)]
    assert float(table[table["fold"] == "mean"].iloc[0]["mean_spearman"]) == pytest.approx(np.mean(values), abs=1e-6)
    assert "| mean ± std | | | 18 | 0.3120 ± 0.0010 |" in markdown and "%" not in markdown.split("\n")[2]


def test_command_line_errors(recipe, capsys):
    make, calls, root = recipe
    folder = make()
    cases = {
        "--data_folder=... is required": [],
        "folds [6] do not exist in IEMOCAP loso (1..5)": [f"--data_folder={root}", "--folds", "1,6"],
        "--output_folder is set per run; use --results_folder": [f"--data_folder={root}", f"--output_folder={root}"],
    }
    for message, argv in cases.items():
        with pytest.raises(SystemExit):
            main(folder / "train.py", {"loso": 5}, [str(folder / "seg.yaml"), *argv], directions={"loso": ["F", "M"]})
        assert message in capsys.readouterr().err
    assert calls() == []
