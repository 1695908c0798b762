"""kNN interpolation against scikit-learn; regression and agreement metrics against scipy/sklearn."""

import time

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from sklearn.neighbors import KNeighborsClassifier

from speechbrain_ext.evaluation.metrics import (
    agreement,
    bootstrap_ci,
    bootstrap_classification,
    concordance_correlation,
    spearman_per_column,
    unweighted_average_recall,
)
from speechbrain_ext.nn.knn import KNNInterpolator


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("k", [1, 5, 17])
def test_knn_probs_match_sklearn(weights, k):
    rng = np.random.default_rng(k)
    keys, labels = rng.normal(size=(400, 16)), rng.integers(0, 4, 400)
    queries = rng.normal(size=(60, 16))
    store = KNNInterpolator(n_classes=4, k=k, weights=weights, chunk_size=7)
    store.add(torch.tensor(keys[:250]), torch.tensor(labels[:250]))
    store.add(torch.tensor(keys[250:]), torch.tensor(labels[250:]))  # datastores grow (train, then valid)
    reference = KNeighborsClassifier(n_neighbors=k, weights=weights).fit(keys, labels).predict_proba(queries)
    np.testing.assert_allclose(store.knn_probs(torch.tensor(queries)).numpy(), reference, atol=1e-5)


def test_alpha_zero_reproduces_the_model_exactly():
    rng = np.random.default_rng(0)
    store = KNNInterpolator(n_classes=3, k=4, alpha=0.0)
    store.add(torch.tensor(rng.normal(size=(50, 4))), torch.tensor(rng.integers(0, 3, 50)))
    model = torch.softmax(torch.tensor(rng.normal(size=(10, 3))).float(), -1)
    assert torch.equal(store.interpolate(model, torch.tensor(rng.normal(size=(10, 4)))), model)
    mixed = store.interpolate(model, torch.tensor(rng.normal(size=(10, 4))), alpha=0.3)
    torch.testing.assert_close(mixed.sum(1), torch.ones(10))


def _clustered(rng, n, n_classes=3, dim=8, spread=1.0):
    centres = np.eye(n_classes, dim) * 3
    labels = rng.integers(0, n_classes, n)
    return centres[labels] + rng.normal(scale=spread, size=(n, dim)), labels


def test_tune_picks_knn_when_the_model_is_poor_and_uses_only_the_given_queries():
    rng = np.random.default_rng(0)
    train, train_y = _clustered(rng, 600)
    valid, valid_y = _clustered(rng, 200)
    # A poor model: right 40% of the time, else a random class.
    noisy = np.where(rng.random(200) < 0.4, valid_y, rng.integers(0, 3, 200))
    model = np.full((200, 3), 0.2)
    model[np.arange(200), noisy] = 0.6
    store = KNNInterpolator(n_classes=3)
    store.add(torch.tensor(train), torch.tensor(train_y))
    result = store.tune(torch.tensor(valid), valid_y, torch.tensor(model))
    assert result["alpha"] > 0.3 and result["score"] > result["model_score"] + 0.2
    assert (store.k, store.alpha) == (result["k"], result["alpha"])
    # the grid score of the chosen pair is what direct interpolation gives on the same data
    pred = store.interpolate(torch.tensor(model), torch.tensor(valid)).argmax(1).numpy()
    assert unweighted_average_recall(valid_y, pred, 3) == pytest.approx(result["score"])
    # alpha = 0 in the grid equals the model alone for every k
    grid = np.array(result["grid"])
    assert np.allclose(grid[:, result["alphas"].index(0.0)], result["model_score"])


def test_knn_is_fast_on_100k_entries():
    rng = np.random.default_rng(0)
    store = KNNInterpolator(n_classes=4, k=16)
    store.add(
        torch.tensor(rng.normal(size=(100_000, 256)), dtype=torch.float32), torch.tensor(rng.integers(0, 4, 100_000))
    )
    queries = torch.tensor(rng.normal(size=(1000, 256)), dtype=torch.float32)
    start = time.perf_counter()
    probs = store.knn_probs(queries)
    elapsed = time.perf_counter() - start
    assert probs.shape == (1000, 4)
    # brute force on 2 CPU cores: ~1 s; a per-query Python loop takes minutes
    assert elapsed < 15, f"kNN over 100k entries took {elapsed:.1f} s"


def test_knn_state_round_trip_and_errors():
    store = KNNInterpolator(n_classes=2, k=3, alpha=0.4)
    with pytest.raises(RuntimeError, match="empty"):
        store.knn_probs(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        store.add(torch.zeros(1, 2), torch.tensor([5]))
    store.add(torch.randn(10, 2), torch.randint(0, 2, (10,)))
    again = KNNInterpolator.from_state_dict(store.state_dict())
    q = torch.randn(4, 2)
    assert torch.equal(again.knn_probs(q), store.knn_probs(q)) and again.alpha == 0.4


def test_spearman_per_column_matches_scipy():
    rng = np.random.default_rng(0)
    y_true = rng.random((300, 9))
    y_true[:, 3] = np.round(y_true[:, 3], 1)  # ties
    y_pred = y_true + rng.normal(scale=0.3, size=(300, 9))
    y_pred[:, 5] = np.round(y_pred[:, 5])  # heavy ties
    ours = spearman_per_column(y_true, y_pred)
    reference = [stats.spearmanr(y_true[:, c], y_pred[:, c]).statistic for c in range(9)]
    np.testing.assert_allclose(ours["per_column"], reference, atol=1e-10)
    assert ours["mean"] == pytest.approx(np.mean(reference))
    # the official score is not the per-clip average over the 9 dimensions
    per_clip = np.mean([stats.spearmanr(y_true[i], y_pred[i]).statistic for i in range(300)])
    assert abs(per_clip - ours["mean"]) > 1e-3


def test_spearman_constant_target_column_counts_as_zero():
    r = spearman_per_column([[1, 0], [2, 0], [3, 0]], [[1, 5], [2, 6], [3, 7]])
    assert np.isnan(r["per_column"][1]) and r["mean"] == 0.5  # (1 + 0) / 2


def test_ccc_matches_definition():
    rng = np.random.default_rng(0)
    t, p = rng.random((100, 3)), rng.random((100, 3))
    for c in range(3):
        x, y = t[:, c], p[:, c]
        expected = 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
        assert concordance_correlation(t, p)[c] == pytest.approx(expected)
    # perfectly correlated but rescaled predictions are not concordant
    assert concordance_correlation(t[:, 0], 2 * t[:, 0])[0] < 0.9


def test_bootstrap_classification_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 3, 200))
    ci = bootstrap_classification(y_true, y_pred, 3, n_boot=300, seed=5)
    idx = np.random.default_rng(5).integers(0, 200, size=(300, 200))
    uars = [unweighted_average_recall(y_true[i], y_pred[i], 3) for i in idx]
    assert ci["UAR"] == (round(np.percentile(uars, 2.5), 4), round(np.percentile(uars, 97.5), 4))
    assert ci["UAR"][0] < unweighted_average_recall(y_true, y_pred, 3) < ci["UAR"][1]
    generic = bootstrap_ci(lambda t, p: unweighted_average_recall(t, p, 3), y_true, y_pred, n_boot=300, seed=5)
    assert generic == pytest.approx(ci["UAR"], abs=1e-4)
    # more data, narrower interval
    wide = ci["UAR"][1] - ci["UAR"][0]
    big = bootstrap_classification(np.tile(y_true, 10), np.tile(y_pred, 10), 3, n_boot=300)
    assert big["UAR"][1] - big["UAR"][0] < wide / 2


def test_agreement_matches_sklearn_kappa():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 300)
    b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 4, 300))
    result = agreement(a, b)
    assert result["agreement"] == pytest.approx(np.mean(a == b))
    assert result["kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-6)
