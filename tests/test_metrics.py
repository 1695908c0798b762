"""Metrics against scikit-learn and scipy."""

import json
import logging
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from data_prep.hume_prosody import EMOTIONS as HUME_EMOTIONS
from speechbrain_ext.evaluation.metrics import (
    bootstrap_spearman,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    spearman_per_column,
    unweighted_average_recall,
    weighted_accuracy,
)
from speechbrain_ext.evaluation.reports import write_regression_report

EMOTIONS = list(HUME_EMOTIONS)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = 7
    y_true = rng.integers(0, n_classes, 300)
    # correlated predictions, so the numbers are far from chance and from 1
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, n_classes, 300))
    assert unweighted_average_recall(y_true, y_pred, n_classes) == pytest.approx(
        skm.balanced_accuracy_score(y_true, y_pred)
    )
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert macro_f1(y_true, y_pred, n_classes) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, n_classes), skm.confusion_matrix(y_true, y_pred, labels=range(n_classes))
    )


def test_uar_ignores_classes_absent_from_references():
    # class 2 is predicted but never true: sklearn's balanced accuracy skips it too
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]
    assert unweighted_average_recall(y_true, y_pred, 3) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))


def test_classification_metrics_fields():
    m = classification_metrics([0, 1, 1, 2], [0, 1, 0, 2], ["a", "b", "c"])
    assert m["UAR"] == pytest.approx(round((1 + 0.5 + 1) / 3, 4))
    assert m["WA"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_class_recall"] == {"a": 1.0, "b": 0.5, "c": 1.0}


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], 2)


def scipy_rho(t, p):
    """Per-column scipy Spearman, NaN (a constant column) replaced by 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = np.array([stats.spearmanr(t[:, j], p[:, j]).statistic for j in range(t.shape[1])])
    return np.nan_to_num(rho, nan=0.0)


def emotion_share_run(n=200, seed=0):
    """Nine correlated outputs; Excitement saturated (constant), Boredom with ties."""
    rng = np.random.default_rng(seed)
    t = rng.random((n, 9))
    p = t + rng.normal(0, 0.3, t.shape)
    p[:, 1] = np.round(p[:, 1], 1)
    p[:, 5] = 1.0
    return t, p


def test_spearman_mean_counts_a_constant_output_as_zero(caplog):
    t, p = emotion_share_run()
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.evaluation.metrics"):
        r = spearman_per_column(t, p, EMOTIONS)
    reference = scipy_rho(t, p)
    assert np.isnan(r["per_column"][5]) and reference[5] == 0.0
    np.testing.assert_allclose(np.delete(r["per_column"], 5), np.delete(reference, 5), atol=1e-10)
    assert r["mean"] == pytest.approx(reference.mean(), abs=1e-12)
    assert r["mean"] < np.mean(np.delete(reference, 5)) - 0.05  # leaving Excitement out would score higher
    [record] = [
        rec for rec in caplog.records if rec.name == "speechbrain_ext.evaluation.metrics"
    ]  # one warning per call
    assert (
        record.levelno == logging.WARNING
        and "output column(s) ['Excitement']" in record.getMessage()
        and "as 0" in record.getMessage()
    )
    assert "Anger" not in record.getMessage() and "target" not in record.getMessage()


def test_spearman_constant_target_named_by_index_without_names(caplog):
    t, p = emotion_share_run(n=50, seed=1)
    p[:, 5] = t[:, 5]  # outputs all vary
    t[:, 2] = 0.5  # one emotion never varies in the labels
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.evaluation.metrics"):
        r = spearman_per_column(t, p)
    assert r["mean"] == pytest.approx(scipy_rho(t, p).mean(), abs=1e-12) and np.isnan(r["per_column"][2])
    [record] = [rec for rec in caplog.records if rec.name == "speechbrain_ext.evaluation.metrics"]
    assert "target column(s) ['2']" in record.getMessage() and "output" not in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.evaluation.metrics"):
        spearman_per_column(t[:, :2], p[:, :2])
    assert not caplog.records  # nothing constant, nothing said


def test_spearman_refuses_non_finite_values():
    t, p = emotion_share_run(n=10)
    p[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"y_pred has NaN or infinite values in column\(s\) \['Sadness'\]"):
        spearman_per_column(t, p, EMOTIONS)


def test_bootstrap_mean_counts_a_constant_output_as_zero():
    t, p = emotion_share_run(n=30, seed=2)
    t, p = t[:, 4:7], p[:, 4:7]  # Determination, Excitement (constant), Interest
    n_boot, seed = 60, 3
    ci = bootstrap_spearman(t, p, n_boot=n_boot, seed=seed)
    # naive loop: the same clips (numpy's generator, drawn the documented way), scipy per column, NaN -> 0, arithmetic mean
    draws = np.random.default_rng(seed).integers(0, len(t), size=(n_boot, len(t)))
    means = np.array([scipy_rho(t[rows], p[rows]).mean() for rows in draws])
    assert ci["mean"] == pytest.approx(
        (round(np.percentile(means, 2.5), 4), round(np.percentile(means, 97.5), 4)), abs=1e-4
    )
    assert ci["mean"][1] < 0.7  # a nanmean over the two varying columns puts the upper bound at 0.75 here
    assert ci["per_column"][1] == (None, None)


def test_regression_report_keeps_undefined_rho_null_and_counts_it_as_zero(tmp_path):
    t, p = emotion_share_run(n=40, seed=4)
    m = write_regression_report(tmp_path, [f"c{i}" for i in range(40)], t, p, EMOTIONS, split="valid", bootstrap=20)
    written = json.loads((tmp_path / "valid_report.json").read_text())
    assert written["spearman"]["Excitement"] is None and m["spearman"]["Excitement"] is None
    assert written["mean_spearman"] == pytest.approx(scipy_rho(t, p).mean(), abs=1e-6)
    assert "| Excitement | undefined |" in (tmp_path / "valid_report.md").read_text()
