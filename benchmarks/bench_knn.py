"""kNN search at scale: 1,000 queries against 100,000 x 256 stored embeddings.

Three timings in this run, each the best of ``--repeats`` (interleaved, so
load from other processes hits all three alike), as ratios to the first:

1. floor: a bare ``queries @ store.T`` + ``torch.topk``, nothing else;
2. the search path of ``KNNInterpolator`` before this benchmark existed
   (``||q||^2 - 2 q.k + ||k||^2`` over the whole chunk, full-row ``topk``),
   kept here verbatim as :func:`old_neighbours`;
3. ``KNNInterpolator.neighbours`` as it is now. Target: <= 1.2x the floor.

``KNNInterpolator`` ranks by Euclidean distance, so the stored embeddings
are Gaussian and not normalised. The neighbours (indices and distances) of
a subset of the queries are checked against scikit-learn's
``NearestNeighbors(algorithm="brute")``; an index may differ only where
scikit-learn's own distances tie.

Usage: ``python benchmarks/bench_knn.py [--threads 2 --n_store 100000
--n_query 1000 --dim 256 --k 16 --repeats 5]``; :func:`run` returns the
numbers for another benchmark.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from speechbrain_ext.nn.knn import KNNInterpolator

TARGET = 1.2


def old_neighbours(
    store: KNNInterpolator, queries: torch.Tensor, k: int, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``KNNInterpolator.neighbours`` as it was (commit be4c230), for the comparison."""
    k = min(int(k), len(store.keys))
    queries = torch.as_tensor(queries).detach().float().cpu()
    dists, idx = [], []
    for start in range(0, len(queries), chunk_size):
        q = queries[start : start + chunk_size]
        sq = (q**2).sum(dim=1, keepdim=True) - 2 * q @ store.keys.T + store._key_norms[None, :]
        d, i = torch.topk(sq, k, dim=1, largest=False, sorted=True)
        dists.append(d.clamp_min(0).sqrt())
        idx.append(i)
    return torch.cat(dists), torch.cat(idx)


def floor_search(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The least any exact search does: one matrix product and one top-k."""
    return torch.topk(queries @ keys.T, k, dim=1)


def check_sklearn(store: KNNInterpolator, queries: torch.Tensor, k: int, n_check: int) -> dict:
    """Compare ``store.neighbours`` with scikit-learn's brute force on the first ``n_check`` queries."""
    q = queries[:n_check]
    dist, idx = store.neighbours(q, k)
    nn = NearestNeighbors(n_neighbors=min(k, len(store)), algorithm="brute").fit(store.keys.numpy())
    ref_dist, ref_idx = nn.kneighbors(q.numpy())
    dist, idx = dist.numpy(), idx.numpy()
    differ = idx != ref_idx
    # a different index is allowed only at a tie in scikit-learn's own distances
    ties = np.zeros_like(differ)
    ties[:, 1:] |= np.isclose(ref_dist[:, 1:], ref_dist[:, :-1], rtol=1e-6, atol=1e-6)
    ties[:, :-1] |= np.isclose(ref_dist[:, :-1], ref_dist[:, 1:], rtol=1e-6, atol=1e-6)
    return {
        "queries_checked": len(q),
        "index_mismatches": int(differ.sum()),
        "index_mismatches_not_ties": int((differ & ~ties).sum()),
        "max_distance_error": float(np.abs(dist - ref_dist).max()),
        "same_as_sklearn": bool(not (differ & ~ties).any() and np.allclose(dist, ref_dist, rtol=1e-5, atol=1e-5)),
    }


def run(
    n_store: int = 100_000,
    n_query: int = 1000,
    dim: int = 256,
    k: int = 16,
    threads: int | None = 2,
    repeats: int = 5,
    n_check: int = 100,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Time the three searches; returns seconds, ratios to the floor and the scikit-learn check.

    ``threads=None`` keeps torch's current thread count.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(n_store, dim, generator=gen)
    labels = torch.randint(0, 4, (n_store,), generator=gen)
    queries = torch.randn(n_query, dim, generator=gen)
    store = KNNInterpolator(n_classes=4, k=k)
    store.add(keys, labels)
    searches = {
        "floor (matmul + topk)": lambda: floor_search(queries, store.keys, k),
        "old KNNInterpolator search": lambda: old_neighbours(store, queries, k),
        "KNNInterpolator.neighbours": lambda: store.neighbours(queries, k),
    }
    times = {name: [] for name in searches}
    for fn in searches.values():  # warm-up
        fn()
    for _ in range(max(1, repeats)):
        for name, fn in searches.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    seconds = {name: min(t) for name, t in times.items()}
    floor = seconds["floor (matmul + topk)"]
    ratios = {name: s / floor for name, s in seconds.items()}
    old_d, old_i = old_neighbours(store, queries, k)
    new_d, new_i = store.neighbours(queries, k)
    result = {
        "n_store": n_store,
        "n_query": n_query,
        "dim": dim,
        "k": k,
        "threads": torch.get_num_threads(),
        "repeats": max(1, repeats),
        "seconds": seconds,
        "ratios": ratios,
        "ratio": ratios["KNNInterpolator.neighbours"],
        "target": TARGET,
        "met": ratios["KNNInterpolator.neighbours"] <= TARGET,
        "old_vs_new_index_mismatches": int((old_i != new_i).sum()),
        "old_vs_new_max_distance_diff": float((old_d - new_d).abs().max()),
        "sklearn": check_sklearn(store, queries, k, min(n_check, n_query)),
    }
    if verbose:
        report(result)
    return result


def report(result: dict) -> None:
    """Print the seconds, the ratios and the checks."""
    print(
        f"kNN search: {result['n_query']} queries x {result['n_store']} x {result['dim']} stored, k={result['k']}, "
        f"{result['threads']} threads, best of {result['repeats']}"
    )
    print(f"    {'search':32} {'seconds':>8} {'ratio':>7}")
    for name, s in result["seconds"].items():
        print(f"    {name:32} {s:8.3f} {result['ratios'][name]:6.3f}x")
    sk = result["sklearn"]
    print(
        f"    old vs new: {result['old_vs_new_index_mismatches']} index mismatches, max distance diff {result['old_vs_new_max_distance_diff']:.2e}"
    )
    print(
        f"    vs scikit-learn brute force ({sk['queries_checked']} queries): {sk['index_mismatches_not_ties']} index mismatches outside ties, "
        f"max distance error {sk['max_distance_error']:.2e}: {'same' if sk['same_as_sklearn'] else 'DIFFERENT'}"
    )
    print(f"    target <= {result['target']:.2f}x: {'met' if result['met'] else 'MISSED'} ({result['ratio']:.4f}x)")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n_store", type=int, default=100_000)
    parser.add_argument("--n_query", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n_check", type=int, default=100, help="queries checked against scikit-learn")
    args = parser.parse_args(argv)
    return run(args.n_store, args.n_query, args.dim, args.k, args.threads, args.repeats, args.n_check)


if __name__ == "__main__":
    main()
