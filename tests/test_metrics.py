"""Metrics against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from speechbrain_ext.metrics import classification_metrics, confusion_matrix, macro_f1, unweighted_average_recall, weighted_accuracy


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = 7
    y_true = rng.integers(0, n_classes, 300)
    # correlated predictions, so the numbers are far from chance and from 1
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, n_classes, 300))
    assert unweighted_average_recall(y_true, y_pred, n_classes) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert macro_f1(y_true, y_pred, n_classes) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, n_classes), skm.confusion_matrix(y_true, y_pred, labels=range(n_classes)))


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
