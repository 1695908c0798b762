"""Tasks and datasets: label-less rows (masked test partitions), label checks, checkpoint selection."""

import json

import numpy as np
import pytest
import soundfile
import torch
from scipy.stats import spearmanr
from sklearn.metrics import recall_score

from speechbrain_ext.data.dataio import recipe_datasets
from speechbrain_ext.training.tasks import UNLABELLED, ClassificationTask, RegressionTask, best_checkpoint


def write_split(folder, name, rows):
    """A manifest whose entries carry the label fields of ``rows`` (None: field absent, as in a masked partition)."""
    entries = {}
    for i, fields in enumerate(rows):
        wav = folder / f"{name}_{i}.wav"
        soundfile.write(wav, np.random.default_rng(i).normal(0, 0.1, 1600 * (i + 1)), 16000)
        entries[f"{name}_{i}"] = {
            "wav": "{data_root}/" + wav.name,
            "duration": 0.1 * (i + 1),
            **{k: v for k, v in fields.items() if v is not None},
        }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_masked_classification_partition_is_predicted_not_scored(tmp_path):
    """A HealthCall30-style test partition (no label field at all) loads; its rows get target -1 and no metrics."""
    manifests = {
        "train": write_split(tmp_path, "train", [{"request": r} for r in ("presta", "affil", "presta", "affil")]),
        "valid": write_split(tmp_path, "valid", [{"request": "presta"}, {"request": "affil"}]),
        "test": write_split(tmp_path, "test", [{"request": None}] * 3),
    }
    task = ClassificationTask("request", 2, str(tmp_path / "labels.txt"))
    datasets = recipe_datasets(manifests, str(tmp_path), task)
    assert [int(item["target"][0]) for item in datasets["test"]] == [UNLABELLED] * 3
    assert [int(item["target"][0]) for item in datasets["valid"]] == [1, 0]  # affil < presta
    report = task.write_report(
        tmp_path / "out", ["t0", "t1", "t2"], [UNLABELLED] * 3, np.full((3, 2), 0.5), split="test"
    )
    assert report["n"] == 0 and report["n_predicted"] == 3 and report["summary_metrics"] == []
    assert len((tmp_path / "out" / "test_predictions.csv").read_text().splitlines()) == 4


def test_partly_labelled_split_scores_only_its_labels():
    task = ClassificationTask("emo", 3, "/nonexistent")
    task.labels_from(["a", "b", "c"])
    targets = np.array([0, 1, UNLABELLED, 2, 2, UNLABELLED])
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=6)
    keep = targets != UNLABELLED
    expected = recall_score(targets[keep], probs[keep].argmax(1), average="macro")
    assert task.stage_metrics(targets, probs)["UAR"] == pytest.approx(expected)


def test_training_rows_must_be_labelled_and_labels_known(tmp_path):
    manifests = {
        "train": write_split(tmp_path, "train", [{"emo": "ang"}, {"emo": None}]),
        "valid": write_split(tmp_path, "valid", [{"emo": "ang"}]),
        "test": write_split(tmp_path, "test", [{"emo": "ang"}]),
    }
    with pytest.raises(ValueError, match=r"train.json: 1 training entries have no 'emo'"):
        recipe_datasets(manifests, str(tmp_path), ClassificationTask("emo", 1, str(tmp_path / "l.txt")))
    manifests["train"] = write_split(tmp_path, "train", [{"emo": "ang"}, {"emo": "sad"}])
    manifests["test"] = write_split(tmp_path, "test", [{"emo": "hap"}])
    with pytest.raises(ValueError, match=r"test.json: labels \['hap'\] of split 'test' never occur in training"):
        recipe_datasets(manifests, str(tmp_path), ClassificationTask("emo", 2, str(tmp_path / "l2.txt")))


def test_regression_targets_losses_and_metrics(tmp_path):
    names = ["Anger", "Calmness", "Sadness"]
    rng = np.random.default_rng(1)
    manifests = {
        "train": write_split(tmp_path, "train", [{"intensities": rng.uniform(size=3).tolist()} for _ in range(3)]),
        "valid": write_split(tmp_path, "valid", [{"intensities": rng.uniform(size=3).tolist()} for _ in range(2)]),
        "test": write_split(tmp_path, "test", [{"intensities": None}] * 2),
    }
    task = RegressionTask("intensities", names)
    datasets = recipe_datasets(manifests, str(tmp_path), task)
    assert all(torch.isnan(item["target"]).all() for item in datasets["test"])
    targets = rng.uniform(size=(20, 3))
    targets[[3, 7]] = np.nan
    preds = targets + rng.normal(0, 0.3, size=targets.shape)
    keep = ~np.isnan(targets).any(1)
    expected = np.mean([spearmanr(targets[keep, j], preds[keep, j]).statistic for j in range(3)])
    assert task.stage_metrics(targets, preds)["mean_spearman"] == pytest.approx(expected)
    loss = task.loss(torch.tensor(preds), torch.tensor(targets))
    assert float(loss) == pytest.approx(np.mean((preds[keep] - targets[keep]) ** 2))
    with pytest.raises(ValueError, match="has 2 'intensities' values, expected 3"):
        bad = {**manifests, "valid": write_split(tmp_path, "valid", [{"intensities": [0.1, 0.2]}])}
        recipe_datasets(bad, str(tmp_path), task)


def test_best_checkpoint_follows_the_recorded_metric_and_direction(tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer

    checkpointer = Checkpointer(str(tmp_path))
    for value in (0.2, 0.6, 0.4):
        checkpointer.save_checkpoint(
            meta={"mean_spearman": value, "selection_metric": "mean_spearman", "selection_mode": "max"}
        )
    assert best_checkpoint(tmp_path).meta["mean_spearman"] == 0.6
    other = tmp_path / "min"
    checkpointer = Checkpointer(str(other))
    for value in (0.3, 0.1, 0.2):
        checkpointer.save_checkpoint(meta={"MSE": value, "selection_metric": "MSE", "selection_mode": "min"})
    assert best_checkpoint(other).meta["MSE"] == 0.1
