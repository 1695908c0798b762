"""The linear probe of w2v2_info_recovery: standardise, a linear-kernel SVM, C by grid search on speaker-grouped folds, scored on held-out speakers."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def cv_splits(
    y: np.ndarray, groups: np.ndarray, n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds of the training split: grouped by speaker (``StratifiedGroupKFold``) when there are enough speakers, else stratified.

    Example
    -------
    >>> y = np.array([0, 1] * 10); groups = np.repeat(np.arange(10), 2)
    >>> splits = cv_splits(y, groups)
    >>> len(splits), all(not set(groups[a]) & set(groups[b]) for a, b in splits)
    (5, True)
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if len(np.unique(groups)) >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))
    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    splitter = StratifiedKFold(n_splits=max(2, min(n_splits, smallest)), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's or ``taskset``'s share), else the CPU count.

    Example
    -------
    >>> 1 <= available_cores() <= (os.cpu_count() or 1)
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def svm_pipeline():
    """Standardisation, then a linear-kernel SVM (C set by the grid search).

    libsvm's ``SVC`` (hinge loss, one-vs-one) solves the dual over the
    ``n x n`` kernel, which suits fewer utterances than features (6373
    functionals), where liblinear's ``LinearSVC`` (the solver before) takes
    long or stops unconverged at C >= 1. The kernel is given as a callable,
    so scikit-learn hands libsvm the Gram matrix made by one BLAS product (in
    float64, as ``kernel="linear"`` computes it) instead of libsvm's
    per-entry loop over the features: the same SVM, a fit in a fraction of
    the time (``benchmarks/bench_probe.py``). libsvm runs to its tolerance
    with no iteration cap, so no fit stops unconverged.

    Example
    -------
    >>> from sklearn.svm import SVC
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(30, 200)).astype(np.float32), np.arange(30) % 3
    >>> probe = svm_pipeline().set_params(svc__C=0.1).fit(x[:20], y[:20])
    >>> libsvm = SVC(kernel="linear", C=0.1).fit(probe[0].transform(x[:20]), y[:20])
    >>> bool((probe.predict(x[20:]) == libsvm.predict(probe[0].transform(x[20:]))).all())
    True
    """
    from sklearn.metrics.pairwise import linear_kernel
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(
        StandardScaler(), FunctionTransformer(np.asarray, kw_args={"dtype": np.float64}), SVC(kernel=linear_kernel)
    )


def probe_fold(
    x: np.ndarray,
    y: np.ndarray,
    speakers: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    grid: Sequence[float] = C_GRID,
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
) -> dict:
    """Grid-search C on ``train_idx`` only, refit, score on ``test_idx``; refuse a split whose speakers overlap.

    Arguments
    ---------
    x : np.ndarray
        ``(n, dim)`` features of the fold's utterances.
    y : np.ndarray
        Class indices.
    speakers : np.ndarray
        Speaker of each row (the cross-validation groups).
    train_idx, test_idx : np.ndarray
        Rows of the training and test split.
    grid : sequence of float
        C values.
    n_splits : int
        Cross-validation folds.
    seed : int
        Fold shuffling.
    n_jobs : int, optional
        Grid-search fits run at once (default: the cores this process may use, :func:`available_cores`).

    Returns
    -------
    dict
        ``UAR``, ``WA``, ``C`` (chosen), ``cv_UAR`` (its mean validation UAR), ``n_train``, ``n_test``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 40); x = rng.normal(size=(80, 4)) + y[:, None]
    >>> spk = np.tile(np.arange(8), 10); train = np.flatnonzero(spk < 6); test = np.flatnonzero(spk >= 6)
    >>> r = probe_fold(x, y, spk, train, test, grid=(0.1, 1.0), n_jobs=1)
    >>> r["UAR"] > 0.7, r["n_train"], r["n_test"]
    (True, 60, 20)
    """
    from sklearn.model_selection import GridSearchCV

    leaked = set(speakers[train_idx]) & set(speakers[test_idx])
    if leaked:
        raise ValueError(f"speakers {sorted(leaked)[:5]} are in both the training and the test split")
    x_train, y_train = x[train_idx], y[train_idx]
    if n_jobs is not None and n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive number of fits at once, got {n_jobs}")
    splits = cv_splits(y_train, speakers[train_idx], n_splits, seed)
    jobs = min(n_jobs or available_cores(), len(grid) * len(splits))
    search = GridSearchCV(svm_pipeline(), {"svc__C": list(grid)}, cv=splits, scoring="balanced_accuracy", n_jobs=jobs)
    search.fit(x_train, y_train)
    predicted = search.predict(x[test_idx])
    truth = y[test_idx]
    recalls = [np.mean(predicted[truth == c] == c) for c in np.unique(truth)]
    return {
        "UAR": float(np.mean(recalls)),
        "WA": float(np.mean(predicted == truth)),
        "C": float(search.best_params_["svc__C"]),
        "cv_UAR": float(search.best_score_),
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
    }
