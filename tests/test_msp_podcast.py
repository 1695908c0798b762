"""MSP-Podcast: Lin's CCC (loss, metric, bootstrap), macro-F1 selection, the release's preparation, export and learning.

References are written here from the definitions (Lin's CCC with numpy,
sklearn's macro-F1), never the library's own functions.
"""

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from data_prep.errors import PreparationError
from data_prep.msp_podcast import prepare_msp_podcast
from speechbrain_ext.evaluation.metrics import bootstrap_ccc, concordance_correlation
from speechbrain_ext.nn.losses import CCCLoss
from speechbrain_ext.training.tasks import ClassificationTask, RegressionTask
from tests.model_folders import random_model_folder


def lins_ccc(x, y):
    """Lin (1989): 2 cov / (var_x + var_y + (mean_x - mean_y)^2), population moments."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (np.mean((x - x.mean()) ** 2) + np.mean((y - y.mean()) ** 2) + (x.mean() - y.mean()) ** 2)


@pytest.fixture(scope="module")
def release(registry_corpora):
    """The registry's synthetic release (conftest SYNTHETIC): 7 speakers (2 Train, 2 Development, 2 Test1, 1 Test2), 3 Unknown segments."""
    return registry_corpora["MSP-Podcast"]


def test_ccc_loss_metric_and_bootstrap_equal_lins_formula():
    rng = np.random.default_rng(0)
    targets = rng.uniform(0, 1, (40, 3))
    preds = 0.6 * targets + 0.2 + rng.normal(0, 0.15, targets.shape)  # correlated, shifted, scaled
    hand = np.array([lins_ccc(targets[:, k], preds[:, k]) for k in range(3)])
    assert 0.2 < hand.min() and hand.max() < 0.95  # not a degenerate case
    np.testing.assert_allclose(concordance_correlation(targets, preds), hand, atol=1e-12)
    loss = CCCLoss()(torch.tensor(preds), torch.tensor(targets))
    assert loss.item() == pytest.approx(1 - hand.mean(), abs=1e-6)
    task = RegressionTask("dimensions", ["arousal", "valence", "dominance"], loss=CCCLoss(), selection="mean_CCC")
    with_unlabelled = torch.cat([torch.tensor(targets), torch.full((2, 3), float("nan"))]).float()
    scores = torch.cat([torch.tensor(preds), torch.zeros(2, 3)]).float()
    assert task.loss(scores, with_unlabelled).item() == pytest.approx(1 - hand.mean(), abs=1e-5)  # NaN rows left out
    metrics = task.stage_metrics(with_unlabelled.double().numpy(), scores.double().numpy())
    assert metrics["mean_CCC"] == pytest.approx(hand.mean(), abs=1e-6)
    assert task.checkpoint_meta(metrics, 0.1)["selection_metric"] == "mean_CCC"
    assert task.keep_kwargs() == {"max_keys": ["mean_CCC"]}
    # bootstrap: the percentile interval of Lin's CCC over items drawn with replacement
    ci = bootstrap_ccc(targets, preds, n_boot=300, seed=3)
    draws = np.random.default_rng(3).integers(0, len(targets), size=(300, len(targets)))
    per_draw = np.array([[lins_ccc(targets[d, k], preds[d, k]) for k in range(3)] for d in draws])
    for k in range(3):
        np.testing.assert_allclose(ci["per_column"][k], np.percentile(per_draw[:, k], [2.5, 97.5]).round(4), atol=1e-4)
    np.testing.assert_allclose(ci["mean"], np.percentile(per_draw.mean(axis=1), [2.5, 97.5]).round(4), atol=1e-4)


def test_regression_defaults_stay_mse_and_spearman():
    """Hume-Prosody's YAMLs set neither: MSE and mean Spearman, as before."""
    task = RegressionTask("intensities", ["a", "b"])
    out, targets = torch.tensor([[0.2, 0.9], [0.6, 0.1]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert task.loss(out, targets).item() == pytest.approx(np.mean((out.numpy() - targets.numpy()) ** 2))
    assert task.selection_metric == "mean_spearman"
    with pytest.raises(ValueError, match="selection must be one of mean_spearman, mean_CCC"):
        RegressionTask("intensities", ["a"], selection="CCC")


def test_macro_f1_selects_and_equals_sklearn(tmp_path):
    task = ClassificationTask("emo", 3, str(tmp_path / "labels.txt"), selection="macro_F1")
    task.labels_from(["ang", "hap", "sad"])
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 50)
    probs = rng.dirichlet([1, 1, 1], 50)
    probs[np.arange(50)[:30], targets[:30]] += 1.0  # better than chance, unequal per class
    metrics = task.stage_metrics(np.concatenate([targets, [-1]]), np.vstack([probs, [[1, 0, 0]]]))
    assert metrics["macro_F1"] == pytest.approx(f1_score(targets, probs.argmax(1), average="macro"), abs=1e-4)
    assert metrics["macro_F1"] != pytest.approx(metrics["UAR"], abs=1e-3)  # the two differ here: the choice matters
    assert task.checkpoint_meta(metrics, 0.5)["selection_metric"] == "macro_F1"
    assert task.find_kwargs() == {"max_key": "macro_F1"}
    assert set(task.log_stats(metrics)) == {"UAR", "WA", "macro_F1"}
    assert ClassificationTask("emo", 3, str(tmp_path / "l.txt")).selection_metric == "UAR"


def test_preparation_of_the_release(release, tmp_path):
    labels = pd.read_csv(release / "Labels" / "labels_consensus.csv", dtype={"SpkrID": str})
    labels["id"] = labels["FileName"].str.removesuffix(".wav")
    expected_split = {"Train": "train", "Development": "valid", "Test1": "test", "Test2": "test2"}
    manifests = {}
    for task in ("categorical", "dimensional"):
        paths = prepare_msp_podcast(release, tmp_path / task, task=task)
        assert set(paths) == {"train", "valid", "test", "test2"}
        assert prepare_msp_podcast(release, tmp_path / task, task=task) == paths  # prepared: skipped, same answer
        manifests[task] = {s: json.loads((tmp_path / task / f"{s}.json").read_text()) for s in paths}
    for task, splits in manifests.items():
        kept = labels if task == "dimensional" else labels[~labels["EmoClass"].isin(["X", "O"])]
        assert sorted(u for m in splits.values() for u in m) == sorted(kept["id"])
        for row in kept.itertuples():
            entry = splits[expected_split[row.Split_Set]][row.id]
            assert entry["dimensions"] == [(row.EmoAct - 1) / 6, (row.EmoVal - 1) / 6, (row.EmoDom - 1) / 6]
            assert entry["speaker"] == (f"Unknown/{row.id}" if row.SpkrID == "Unknown" else row.SpkrID)
    categorical = {e["emo"] for m in manifests["categorical"].values() for e in m.values()}
    assert categorical == {"ang", "sad", "hap", "sur", "fea", "dis", "con", "neu"}
    assert {"X", "O"} <= {e["emo"] for m in manifests["dimensional"].values() for e in m.values()}
    summary = json.loads((tmp_path / "dimensional" / "summary.json").read_text())
    assert summary["unknown_speaker_segments"] == {"train": int((labels["SpkrID"] == "Unknown").sum())} == {"train": 3}


def test_bad_rows_are_named_before_any_audio_is_read(release, tmp_path):
    bad = shutil.copytree(release / "Labels", tmp_path / "bad" / "Labels")
    (tmp_path / "bad" / "Audios").mkdir()  # no audio at all: the label check comes first
    lines = (bad / "labels_consensus.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "8.5"  # EmoAct above 7, on line 4
    lines[3] = ",".join(fields)
    fields = lines[5].split(",")
    fields[4] = "n/a"  # EmoDom not a number, on line 6
    lines[5] = ",".join(fields)
    (bad / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        PreparationError, match=r"labels_consensus.csv: 2 bad row\(s\).*line 4: EmoAct = '8.5'.*line 6: EmoDom = 'n/a'"
    ):
        prepare_msp_podcast(tmp_path / "bad", tmp_path / "out", task="dimensional")
    original = (release / "Labels" / "labels_consensus.csv").read_text().splitlines()
    lines[3] = original[3].replace(",Train", ",Validation")
    (bad / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(PreparationError, match="unknown Split_Set value.*'Validation'"):
        prepare_msp_podcast(tmp_path / "bad", tmp_path / "out", task="dimensional")
    shutil.copy(release / "Labels" / "labels_consensus.csv", bad / "labels_consensus.csv")
    with pytest.raises(PreparationError, match="no audio for .* labelled segment"):
        prepare_msp_podcast(tmp_path / "bad", tmp_path / "out", task="categorical")


def test_exported_dimensional_model_answers_arousal_valence_dominance(release, tiny_models, tmp_path):
    from speechbrain_ext.serving.inference import EmotionRegressor

    folder, _ = random_model_folder("recipes/MSP-Podcast/hparams/dimensional.yaml", tiny_models, tmp_path / "reg")
    model = EmotionRegressor.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    result = model.predict_file(str(next((release / "Audios").glob("*.wav"))))
    assert list(result) == ["arousal", "valence", "dominance"]
    assert all(0.0 <= v <= 1.0 for v in result.values())


def test_dimensional_tiny_run_learns_on_held_out_speakers(recipe_runs):
    """The learning run of conftest (tiny wav2vec2, synthetic release): Test1 speakers never trained on, mean CCC > 0.3."""
    proc, run = recipe_runs.result("msp_podcast_dimensional")
    test = json.loads((run / "test_report.json").read_text())
    print(f"\nMSP-Podcast Test1 mean CCC {test['mean_CCC']:.3f} {test['mean_CCC_CI95']} ({proc.seconds:.0f} s)")
    assert test["mean_CCC"] > 0.3
    with (run / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    train_speakers = {e["speaker"] for e in json.loads((run / "prep" / "train.json").read_text()).values()}
    test_speakers = {e["speaker"] for e in json.loads((run / "prep" / "test.json").read_text()).values()}
    assert not train_speakers & test_speakers and len(rows) == test["n"]
    for name in ("arousal", "valence", "dominance"):
        true, pred = [float(r[f"true_{name}"]) for r in rows], [float(r[f"pred_{name}"]) for r in rows]
        assert test["CCC"][name] == pytest.approx(lins_ccc(true, pred), abs=1e-5)
        low, high = test["CCC_CI95"][name]
        assert low <= test["CCC"][name] + 1e-3 and test["CCC"][name] - 1e-3 <= high
    kept = [p.read_text() for p in (run / "save").glob("CKPT+*/CKPT.yaml")]
    assert len(kept) == 1 and "selection_metric: mean_CCC" in kept[0]
