"""The fast kNN search: same neighbours as scikit-learn and a plain top-k; its benchmark runs on tiny sizes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from speechbrain_ext.nn.knn import _GROUP, KNNInterpolator, smallest_k

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_knn.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_knn", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [3001, 3008])  # with and without trailing columns outside the groups
@pytest.mark.parametrize("k", [1, 7, 32])
def test_neighbours_equal_sklearn_brute_force(n, k):
    rng = np.random.default_rng(n + k)
    keys, queries = rng.normal(size=(n, 24)).astype(np.float32), rng.normal(size=(300, 24)).astype(np.float32)
    store = KNNInterpolator(n_classes=3, k=k, chunk_size=128)  # 300 queries: three chunks, the last one partial
    store.add(torch.tensor(keys[:1000]), torch.tensor(rng.integers(0, 3, 1000)))
    store.add(torch.tensor(keys[1000:]), torch.tensor(rng.integers(0, 3, n - 1000)))
    assert n // _GROUP >= 4 * k  # the grouped top-k is the path under test
    dist, idx = store.neighbours(torch.tensor(queries), k)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(keys).kneighbors(queries)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-5, atol=1e-5)
    # the same neighbours as the search it replaces (one full-row top-k)
    old_dist, old_idx = _bench().old_neighbours(store, torch.tensor(queries), k)
    assert torch.equal(idx, old_idx)
    torch.testing.assert_close(dist, old_dist, rtol=1e-5, atol=1e-5)


def test_smallest_k_equals_topk_including_ties():
    gen = torch.Generator().manual_seed(0)
    block = torch.randn(40, 5000, generator=gen)
    for k in (1, 5, 50):
        expected = torch.topk(block, k, dim=1, largest=False, sorted=True)
        values, indices = smallest_k(block, k)
        assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)
    # heavy ties (few distinct values): the values are those of topk, each index points at its value
    ties = torch.randint(0, 50, (40, 5003), generator=gen).float()
    values, indices = smallest_k(ties, 20)
    assert torch.equal(values, torch.topk(ties, 20, dim=1, largest=False, sorted=True).values)
    assert torch.equal(ties.gather(1, indices), values) and all(len(set(row.tolist())) == 20 for row in indices)
    # narrow rows take the plain top-k
    narrow = torch.randn(3, 40, generator=gen)
    assert torch.equal(smallest_k(narrow, 4)[1], torch.topk(narrow, 4, dim=1, largest=False).indices)


def _naive_interpolation(keys, labels, queries, model, n_classes, k, alpha, weights):
    """``p = alpha p_knn + (1 - alpha) p_model`` from the definition, one query at a time in float64."""
    out = np.zeros((len(queries), n_classes))
    for i, q in enumerate(queries):
        d = np.sqrt(((keys - q) ** 2).sum(axis=1))
        nearest = np.argsort(d, kind="stable")[:k]
        votes = np.zeros(n_classes)
        for j in nearest:
            votes[labels[j]] += 1.0 if weights == "uniform" else 1.0 / d[j]
        out[i] = alpha * votes / votes.sum() + (1 - alpha) * model[i]
    return out


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_interpolated_probabilities_equal_a_naive_loop(weights):
    rng = np.random.default_rng(3)
    keys, labels = rng.normal(size=(4000, 16)), rng.integers(0, 5, 4000)
    queries = rng.normal(size=(80, 16))
    model = rng.dirichlet(np.ones(5), size=80)
    store = KNNInterpolator(n_classes=5, k=9, alpha=0.35, weights=weights)
    store.add(torch.tensor(keys), torch.tensor(labels))
    ours = store.interpolate(torch.tensor(model), torch.tensor(queries)).numpy()
    np.testing.assert_allclose(ours, _naive_interpolation(keys, labels, queries, model, 5, 9, 0.35, weights), atol=1e-5)


def test_benchmark_run_on_tiny_sizes(capsys):
    bench = _bench()
    threads = torch.get_num_threads()
    result = bench.run(n_store=2000, n_query=50, dim=32, k=8, threads=None, repeats=1, n_check=50)
    assert torch.get_num_threads() == threads  # threads=None leaves the process as it was
    assert list(result["seconds"]) == [
        "floor (matmul + topk)",
        "old KNNInterpolator search",
        "KNNInterpolator.neighbours",
    ]
    assert all(s > 0 for s in result["seconds"].values())
    assert result["ratio"] == pytest.approx(
        result["seconds"]["KNNInterpolator.neighbours"] / result["seconds"]["floor (matmul + topk)"]
    )
    assert result["ratios"]["floor (matmul + topk)"] == 1.0 and result["met"] == (result["ratio"] <= 1.2)
    assert result["sklearn"]["same_as_sklearn"] and result["sklearn"]["queries_checked"] == 50
    assert result["old_vs_new_index_mismatches"] == 0
    printed = capsys.readouterr().out
    assert f"({result['ratio']:.4f}x)" in printed and "same" in printed
