"""Late fusion, tuned weights, majority vote and averaged intensities, checked against naive loops,
scikit-learn and scipy on prediction files written here."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import balanced_accuracy_score

from speechbrain_ext.methods.fusion import fuse_runs

REPO = Path(__file__).resolve().parents[1]
LABELS = ["ang", "hap", "neu", "sad"]
NAMES = ["Anger", "Calmness", "Interest"]


def write_classification_run(folder: Path, rng, truth: dict, shuffle: bool = True) -> dict:
    """A run folder with random probabilities for valid and test; returns split -> DataFrame."""
    frames = {}
    for split, labels in truth.items():
        ids = [f"{split}_{k:03d}" for k in range(len(labels))]
        probs = rng.dirichlet(np.ones(len(LABELS)) * 0.7, size=len(ids))
        frame = pd.DataFrame({"id": ids, "true": labels, "predicted": [LABELS[k] for k in probs.argmax(1)]})
        frame = pd.concat([frame, pd.DataFrame(probs, columns=[f"p_{lab}" for lab in LABELS])], axis=1)
        if shuffle:
            frame = frame.sample(frac=1.0, random_state=int(rng.integers(1000)))
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / f"{split}_predictions.csv", index=False)
        frames[split] = frame.set_index("id")
    return frames


@pytest.fixture
def classification_runs(tmp_path):
    rng = np.random.default_rng(0)
    truth = {"valid": list(rng.choice(LABELS, 60)), "test": list(rng.choice(LABELS, 50))}
    truth["test"][:5] = [""] * 5  # five masked rows: predicted, never scored
    runs = [tmp_path / f"run{k}" for k in range(3)]
    frames = [write_classification_run(run, rng, truth) for run in runs]
    return runs, frames


def uar(true, probs):
    keep = true != ""
    return balanced_accuracy_score(true[keep], np.array(LABELS)[probs[keep].argmax(1)])


def test_tuned_weights_match_a_naive_grid_search(classification_runs, tmp_path):
    runs, frames = classification_runs
    reports = fuse_runs(runs, tmp_path / "fused", tune_on="valid", step=0.25)
    ids = frames[0]["valid"].index
    true = frames[0]["valid"].loc[ids, "true"].to_numpy()
    probs = [f["valid"].loc[ids, [f"p_{lab}" for lab in LABELS]].to_numpy() for f in frames]
    best, best_w = -1.0, None
    for a in range(5):
        for b in range(5):
            for c in range(5):
                w = np.array([a, b, c]) / 4
                if w.max() != 1.0:
                    continue
                score = uar(true, sum(wk * p for wk, p in zip(w, probs)) / w.sum())
                if score > best + 1e-12 or (abs(score - best) <= 1e-12 and w.sum() > best_w.sum()):
                    best, best_w = score, w
    assert reports["fusion"]["weights"] == best_w.tolist()
    assert reports["valid"]["UAR"] == pytest.approx(best, abs=5e-5)
    grid = pd.read_csv(tmp_path / "fused" / "fusion_grid.csv")
    assert len(grid) == 5**3 - 4**3 and grid["metric"].max() == pytest.approx(best, abs=1e-6)
    # the test split gets the valid-tuned weights, and its masked rows are listed but not scored
    test = pd.read_csv(tmp_path / "fused" / "test_predictions.csv", keep_default_na=False).set_index("id")
    expected = (
        sum(w * f["test"].loc[test.index, [f"p_{lab}" for lab in LABELS]].to_numpy() for w, f in zip(best_w, frames))
        / best_w.sum()
    )
    np.testing.assert_allclose(test[[f"p_{lab}" for lab in LABELS]].to_numpy(), expected, atol=2e-6)
    assert reports["test"]["n"] == 45 and reports["test"]["n_predicted"] == 50
    assert reports["test"]["UAR"] == pytest.approx(uar(test["true"].to_numpy(), expected), abs=5e-5)


def test_majority_vote_matches_a_counting_loop(classification_runs, tmp_path):
    runs, frames = classification_runs
    fuse_runs(runs, tmp_path / "vote", vote=True)
    out = pd.read_csv(tmp_path / "vote" / "valid_predictions.csv", keep_default_na=False)
    cols = [f"p_{lab}" for lab in LABELS]
    for _, row in out.iterrows():
        rows = [f["valid"].loc[row["id"], cols].to_numpy(float) for f in frames]
        votes = Counter(LABELS[int(np.argmax(r))] for r in rows)
        top = max(votes.values())
        tied = [lab for lab in LABELS if votes[lab] == top]
        mean = np.mean(rows, axis=0)
        assert row["predicted"] == max(tied, key=lambda lab: mean[LABELS.index(lab)])
        assert [row[c] for c in cols] == pytest.approx([votes[lab] / 3 for lab in LABELS])


def test_equal_weights_by_default_and_given_weights(classification_runs, tmp_path):
    runs, frames = classification_runs
    avg = fuse_runs(runs[:2], tmp_path / "avg")
    given = fuse_runs(runs[:2], tmp_path / "given", weights=[2.0, 2.0])
    assert avg["fusion"]["weights"] == [1.0, 1.0] and avg["valid"]["UAR"] == given["valid"]["UAR"]
    ids = frames[0]["valid"].index
    cols = [f"p_{lab}" for lab in LABELS]
    expected = (frames[0]["valid"].loc[ids, cols].to_numpy() + frames[1]["valid"].loc[ids, cols].to_numpy()) / 2
    assert avg["valid"]["UAR"] == pytest.approx(
        uar(frames[0]["valid"].loc[ids, "true"].to_numpy(), expected), abs=5e-5
    )  # reports keep 4 decimals


def test_regression_average_and_masked_test(tmp_path):
    rng = np.random.default_rng(1)
    truth = rng.random((40, 3))
    runs = []
    for k in range(2):
        for split in ("valid", "test"):
            frame = pd.DataFrame({"id": [f"c{i}" for i in range(40)]})
            for j, name in enumerate(NAMES):
                frame[f"true_{name}"] = truth[:, j] if split == "valid" else np.nan
            for j, name in enumerate(NAMES):
                frame[f"pred_{name}"] = truth[:, j] + rng.normal(0, 0.3 + 0.3 * k, 40)
            (tmp_path / f"r{k}").mkdir(exist_ok=True)
            frame.to_csv(tmp_path / f"r{k}" / f"{split}_predictions.csv", index=False)
        runs.append(tmp_path / f"r{k}")
    reports = fuse_runs(runs, tmp_path / "ens")
    fused = pd.read_csv(tmp_path / "ens" / "valid_predictions.csv")
    inputs = [pd.read_csv(run / "valid_predictions.csv") for run in runs]
    for name in NAMES:
        np.testing.assert_allclose(
            fused[f"pred_{name}"], (inputs[0][f"pred_{name}"] + inputs[1][f"pred_{name}"]) / 2, atol=2e-6
        )
        assert reports["valid"]["spearman"][name] == pytest.approx(
            spearmanr(fused[f"true_{name}"], fused[f"pred_{name}"])[0], abs=1e-5
        )
    assert reports["test"]["n"] == 0 and reports["test"]["n_predicted"] == 40
    tuned = fuse_runs(runs, tmp_path / "tuned", tune_on="valid")
    assert tuned["valid"]["mean_spearman"] >= reports["valid"]["mean_spearman"] - 1e-9
    with pytest.raises(ValueError, match="majority vote needs class decisions"):
        fuse_runs(runs, tmp_path / "v", vote=True)


def test_tuning_counts_a_constant_fused_output_as_zero(tmp_path, caplog):
    # truth rises in both outputs; run A ranks Anger right and saturates Calmness,
    # run B ranks Anger backwards and Calmness right. Fused over the grid (step 0.5):
    #   w     Anger  Calmness  0-counted  nanmean
    #   0 1    -1      1         0          0
    #   .5 1   -1      1         0          0
    #   1 0     1    const      0.5         1
    #   1 .5    1      1         1          1
    #   1 1   const    1        0.5         1   (nanmean's tie rule: the largest weight sum wins)
    rising = np.arange(1.0, 6.0)
    runs = {"a": {"Anger": rising, "Calmness": np.full(5, 0.9)}, "b": {"Anger": rising[::-1], "Calmness": rising}}
    for run, preds in runs.items():
        for split in ("valid", "test"):
            frame = pd.DataFrame({"id": [f"c{i}" for i in range(5)]})
            for name in ("Anger", "Calmness"):
                frame[f"true_{name}"] = rising if split == "valid" else np.nan
            for name in ("Anger", "Calmness"):
                frame[f"pred_{name}"] = preds[name]
            (tmp_path / run).mkdir(exist_ok=True)
            frame.to_csv(tmp_path / run / f"{split}_predictions.csv", index=False)
    with caplog.at_level("WARNING", logger="speechbrain_ext.evaluation.metrics"):
        tuned = fuse_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "tuned", tune_on="valid", step=0.5)
    grid = pd.read_csv(tmp_path / "tuned" / "fusion_grid.csv")
    np.testing.assert_allclose(grid.iloc[:, :2].to_numpy(), [[0, 1], [0.5, 1], [1, 0], [1, 0.5], [1, 1]])
    np.testing.assert_allclose(grid["metric"], [0, 0, 0.5, 1, 0.5], atol=1e-9)
    assert tuned["fusion"]["weights"] == [1.0, 0.5] and tuned["valid"]["mean_spearman"] == pytest.approx(1.0)
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "speechbrain_ext.evaluation.metrics"]
    assert any("output column(s) ['Calmness']" in m for m in messages) and any(
        "output column(s) ['Anger']" in m for m in messages
    )


def test_runs_of_other_utterances_or_labels_are_refused(classification_runs, tmp_path):
    runs, _ = classification_runs
    other = tmp_path / "other"
    other.mkdir()
    for split in ("valid", "test"):
        frame = pd.read_csv(runs[0] / f"{split}_predictions.csv", keep_default_na=False)
        frame.iloc[:-1].to_csv(other / f"{split}_predictions.csv", index=False)
    with pytest.raises(ValueError, match=f"{runs[0]} and {other} hold different utterances: 1 only in the first"):
        fuse_runs([runs[0], other], tmp_path / "x")
    for split in ("valid", "test"):
        frame = pd.read_csv(runs[0] / f"{split}_predictions.csv", keep_default_na=False)
        frame["true"] = frame["true"].replace({"ang": "sad", "sad": "ang"})
        frame.to_csv(other / f"{split}_predictions.csv", index=False)
    with pytest.raises(ValueError, match="disagree on the references"):
        fuse_runs([runs[0], other], tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="no valid predictions"):
        fuse_runs([runs[0], tmp_path / "missing"], tmp_path / "x")
    with pytest.raises(ValueError, match="tuned on the valid split only"):
        fuse_runs(runs, tmp_path / "x", tune_on="test")


def test_command_line(classification_runs, tmp_path):
    runs, _ = classification_runs
    cmd = [
        sys.executable,
        "-m",
        "speechbrain_ext.methods.fusion_cli",
        *map(str, runs[:2]),
        "--out",
        str(tmp_path / "cli"),
        "--weights",
        "1.0",
        "0.5",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "late_fusion of 2 runs, weights [1.0, 0.5]" in proc.stdout and "| test |" in proc.stdout
    assert json.loads((tmp_path / "cli" / "fusion.json").read_text())["weights"] == [1.0, 0.5]
    proc = subprocess.run([*cmd[:-3], "--weights", "1.0"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "one non-negative weight per run" in proc.stderr
    proc = subprocess.run([*cmd[:-3], "--vote", "--tune-on", "valid"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "not allowed with" in proc.stderr
