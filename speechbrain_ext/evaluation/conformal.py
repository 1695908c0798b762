"""Split-conformal prediction sets with a coverage guarantee, and out-of-distribution thresholds.

Split conformal prediction (Vovk et al.; Angelopoulos and Bates, "A gentle
introduction to conformal prediction", 2021): a nonconformity score
``s(x, y)`` is computed on ``n`` labelled calibration rows (the validation
split, never test), ``qhat`` is their ``ceil((n + 1)(1 - alpha))``-th smallest
score (the quantile at level ``ceil((n + 1)(1 - alpha)) / n``, the
finite-sample correction), and a new row's set is ``{y : s(x, y) <= qhat}``.
When calibration and test rows are exchangeable, the set holds the true
label with probability at least ``1 - alpha`` (marginally, over the draw of
both). When ``ceil((n + 1)(1 - alpha)) > n`` no finite quantile gives the
guarantee: ``qhat`` is ``+inf`` and every set is the full label set.

Scores (``probs``: ``(n, n_classes)`` probabilities, e.g. after temperature
scaling, :mod:`speechbrain_ext.evaluation.calibration`):

- ``lac`` (least ambiguous set-valued classifier, Sadinle et al. 2019):
  ``s(x, y) = 1 - p_y``; the sets are the classes with ``p_y >= 1 - qhat``
  (smallest sets on average, may be empty).
- ``aps`` (adaptive prediction sets, Romano et al. 2020):
  ``s(x, y) = sum of p_j over the classes ranked before y + u * p_y``, the
  classes ranked by decreasing probability (equal probabilities: lower class
  index first). Not randomised (the default here): ``u = 1``, the
  probability mass down to and including ``y``; the sets are deterministic
  (an inference call gives the run's set) and cover at least ``1 - alpha``,
  usually a little more. Randomised (``randomized=True``): ``u ~ U(0, 1)``
  drawn once per row (shared by the row's classes, so sets stay nested) from
  a seeded generator; coverage is then close to exactly ``1 - alpha`` with
  smaller sets, but a row's set depends on its draw. Either may give an
  empty set (when the top class alone passes ``qhat``); no class is added to
  force a non-empty set.

Mondrian (class-conditional) sets (Vovk 2003): one ``qhat_y`` per class from
the calibration rows of that class; ``y`` enters a set when
``s(x, y) <= qhat_y``. The coverage guarantee then holds within each class
(``P(y in C(x) | y) >= 1 - alpha``), which the marginal sets do not give for
rare classes; a class with too few calibration rows gets ``qhat_y = +inf``
(always in the set).

Out-of-distribution flags (:func:`ood_threshold`): a score where larger means
stranger (the distance of an embedding to its ``k``-th neighbour in a kNN
datastore, a Bayesian head's mutual information) is flagged above the
threshold set on validation rows at a chosen false-alarm rate ``f``. The
threshold is the same finite-sample quantile at level ``1 - f``, so an
in-distribution row exchangeable with the validation rows is flagged with
probability at most ``f``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METHODS = ("lac", "aps")


def quantile_rank(n: int, alpha: float) -> int:
    """``ceil((n + 1)(1 - alpha))``: the rank (1-based) of the calibration score that is ``qhat``.

    Arguments
    ---------
    n : int
        Number of calibration scores.
    alpha : float
        Miscoverage rate in (0, 1).

    Returns
    -------
    int
        May exceed ``n`` (then ``qhat`` is ``+inf``).

    Example
    -------
    >>> quantile_rank(19, 0.1), quantile_rank(8, 0.1)
    (18, 9)
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    # rounded before ceil: (n + 1)(1 - alpha) = 18.0 must not become 18.000000000000004 -> 19
    return int(math.ceil(round((n + 1) * (1.0 - alpha), 9)))


def conformal_quantile(scores, alpha: float) -> float:
    """The split-conformal ``qhat``: the ``ceil((n + 1)(1 - alpha))``-th smallest score, ``+inf`` past ``n``.

    This is the empirical quantile at level ``ceil((n + 1)(1 - alpha)) / n``
    (numpy's ``method="higher"``/``"inverted_cdf"``); no interpolation.

    Arguments
    ---------
    scores : array-like
        ``(n,)`` calibration scores of the true labels.
    alpha : float
        Miscoverage rate in (0, 1).

    Returns
    -------
    float

    Example
    -------
    >>> conformal_quantile([0.1, 0.4, 0.2, 0.3], 0.25)  # rank ceil(5 * 0.75) = 4
    0.4
    >>> conformal_quantile([0.1, 0.4, 0.2, 0.3], 0.1)  # rank 5 > 4 rows: no finite quantile
    inf
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    rank = quantile_rank(len(scores), alpha)
    if rank > len(scores):
        return math.inf
    return float(np.partition(scores, rank - 1)[rank - 1])


def aps_offsets(n_rows: int, randomized: bool = False, seed: int = 0) -> np.ndarray:
    """The ``u`` of each row's APS scores: ones, or ``U(0, 1)`` draws of a seeded generator.

    Example
    -------
    >>> aps_offsets(2).tolist()
    [1.0, 1.0]
    >>> bool(np.all(aps_offsets(3, randomized=True, seed=1) == aps_offsets(3, randomized=True, seed=1)))
    True
    """
    if not randomized:
        return np.ones(n_rows)
    return np.random.default_rng(seed).random(n_rows)


def score_matrix(probs, method: str = "aps", offsets=None) -> np.ndarray:
    """Nonconformity score of every (row, class): ``(n, n_classes)``.

    Arguments
    ---------
    probs : array-like
        ``(n, n_classes)`` probabilities.
    method : str
        ``lac`` (``1 - p_y``) or ``aps`` (probability mass of the classes
        ranked before ``y`` plus ``u * p_y``).
    offsets : array-like, optional
        APS: the ``(n,)`` ``u`` of each row (default ones: not randomised; see :func:`aps_offsets`).

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> p = [[0.5, 0.2, 0.3]]
    >>> score_matrix(p, "lac").round(2).tolist()
    [[0.5, 0.8, 0.7]]
    >>> score_matrix(p, "aps").round(2).tolist()  # class 0 first, then 2, then 1
    [[0.5, 1.0, 0.8]]
    >>> score_matrix(p, "aps", offsets=[0.5]).round(2).tolist()
    [[0.25, 0.9, 0.65]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if method == "lac":
        return 1.0 - probs
    if method != "aps":
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    u = np.ones(len(probs)) if offsets is None else np.asarray(offsets, dtype=np.float64).reshape(-1)
    order = np.argsort(-probs, axis=1, kind="stable")  # equal probabilities: lower index first
    ranked = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked
    scores = np.empty_like(probs)
    np.put_along_axis(scores, order, before + u[:, None] * ranked, axis=1)
    return scores


def true_label_scores(probs, labels, method: str = "aps", offsets=None) -> np.ndarray:
    """``s(x_i, y_i)`` of each labelled row (see :func:`score_matrix`).

    Example
    -------
    >>> true_label_scores([[0.5, 0.2, 0.3], [0.1, 0.9, 0.0]], [2, 1], "lac").round(2).tolist()
    [0.7, 0.1]
    """
    labels = np.asarray(labels, dtype=int).reshape(-1)
    return score_matrix(probs, method, offsets)[np.arange(len(labels)), labels]


def mondrian_quantiles(scores, labels, n_classes: int, alpha: float) -> np.ndarray:
    """One ``qhat`` per class from the calibration rows of that class (``+inf`` for a class with too few rows).

    Arguments
    ---------
    scores : array-like
        ``(n,)`` true-label scores.
    labels : array-like
        ``(n,)`` their classes.
    n_classes : int
        Number of classes.
    alpha : float
        Miscoverage rate.

    Returns
    -------
    numpy.ndarray
        ``(n_classes,)``.

    Example
    -------
    >>> mondrian_quantiles([0.1, 0.2, 0.3, 0.9, 0.8], [0, 0, 0, 1, 1], 3, 0.25).tolist()
    [0.3, inf, inf]
    """
    scores, labels = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(labels, dtype=int).reshape(-1)
    return np.array([conformal_quantile(scores[labels == c], alpha) for c in range(int(n_classes))])


def prediction_sets(scores, qhat) -> np.ndarray:
    """Boolean ``(n, n_classes)`` membership: ``s(x, y) <= qhat`` (``qhat`` a scalar or one per class).

    ``None`` stands for ``+inf`` (as ``calibration.json`` stores it): the class is always in the set.

    Example
    -------
    >>> prediction_sets([[0.5, 0.8, 0.7]], 0.7).tolist()
    [[True, False, True]]
    >>> prediction_sets([[0.5, 0.8, 0.7]], [0.4, None, 0.7]).tolist()
    [[False, True, True]]
    """
    if isinstance(qhat, (list, tuple)):
        qhat = [math.inf if q is None else q for q in qhat]
    qhat = math.inf if qhat is None else qhat
    return np.asarray(scores, dtype=np.float64) <= np.asarray(qhat, dtype=np.float64)


def fit_conformal(
    probs,
    labels,
    alpha: float = 0.1,
    method: str = "aps",
    mondrian: bool = False,
    randomized: bool = False,
    seed: int = 0,
) -> dict:
    """Calibrate split-conformal sets on labelled rows: what :func:`conformal_sets` needs, as plain values.

    Arguments
    ---------
    probs : array-like
        ``(n, n_classes)`` calibration (validation) probabilities.
    labels : array-like
        ``(n,)`` their true classes.
    alpha : float
        Miscoverage rate (sets cover ``1 - alpha``).
    method : str
        ``lac`` or ``aps``.
    mondrian : bool
        One quantile per class (class-conditional coverage).
    randomized : bool
        APS with ``u ~ U(0, 1)`` (see the module docstring); ignored for LAC.
    seed : int
        Seed of the calibration rows' ``u`` (randomised APS).

    Returns
    -------
    dict
        ``alpha``, ``method``, ``mondrian``, ``randomized``, ``n_calibration``,
        ``quantile`` (a float, or a list of one per class when Mondrian;
        ``inf`` where no finite quantile exists), ``class_counts``, ``scores``
        (the sorted true-label scores: :func:`conformal_quantile` of them at
        any ``alpha`` is that alpha's ``qhat``) and, when Mondrian,
        ``class_scores`` (the sorted scores of each class).

    Example
    -------
    >>> fit = fit_conformal([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]], [0, 1, 1, 1], alpha=0.25, method="lac")
    >>> round(fit["quantile"], 2), fit["n_calibration"]
    (0.6, 4)
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    randomized = bool(randomized) and method == "aps"
    scores = true_label_scores(probs, labels, method, aps_offsets(len(labels), randomized, seed))
    n_classes = probs.shape[1]
    quantile = (
        mondrian_quantiles(scores, labels, n_classes, alpha).tolist() if mondrian else conformal_quantile(scores, alpha)
    )
    return {
        "alpha": float(alpha),
        "method": method,
        "mondrian": bool(mondrian),
        "randomized": randomized,
        "n_calibration": int(len(labels)),
        "quantile": quantile,
        "class_counts": np.bincount(labels, minlength=n_classes).tolist(),
        "scores": np.sort(scores).tolist(),
        **({"class_scores": [np.sort(scores[labels == c]).tolist() for c in range(n_classes)]} if mondrian else {}),
    }


def conformal_sets(probs, fit: dict, seed: int = 1) -> np.ndarray:
    """The prediction sets of new rows under a :func:`fit_conformal` calibration: boolean ``(n, n_classes)``.

    Arguments
    ---------
    probs : array-like
        ``(n, n_classes)`` probabilities (transformed as the calibration rows were).
    fit : dict
        :func:`fit_conformal`'s result (or the same values read back from JSON).
    seed : int
        Seed of these rows' ``u`` (randomised APS only).

    Example
    -------
    >>> fit = {"method": "lac", "quantile": 0.6, "randomized": False}
    >>> conformal_sets([[0.5, 0.5], [0.95, 0.05]], fit).tolist()
    [[True, True], [True, False]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    offsets = aps_offsets(len(probs), bool(fit.get("randomized")), seed)
    return prediction_sets(score_matrix(probs, fit["method"], offsets), fit["quantile"])


def set_metrics(sets, labels=None, class_names: Sequence[str] | None = None) -> dict:
    """Coverage (overall and per class), mean set size and singleton share of prediction sets.

    Set size and singleton share are over every row; coverage over the rows
    with a label (``labels >= 0``; ``None`` when none has one). A class
    without labelled rows has coverage ``None``.

    Arguments
    ---------
    sets : array-like
        Boolean ``(n, n_classes)``.
    labels : array-like, optional
        ``(n,)`` true classes, -1 for an unlabelled row.
    class_names : sequence of str, optional
        Keys of ``coverage_per_class`` (default the class indices).

    Returns
    -------
    dict
        ``n``, ``n_labelled``, ``coverage``, ``coverage_per_class``,
        ``mean_set_size``, ``singleton_share``, ``empty_share``.

    Example
    -------
    >>> m = set_metrics([[True, False], [True, True], [False, False]], [0, 1, 1], ["a", "b"])
    >>> m["coverage"], m["coverage_per_class"], m["mean_set_size"], m["singleton_share"]
    (0.666667, {'a': 1.0, 'b': 0.5}, 1.0, 0.333333)
    """
    sets = np.asarray(sets, dtype=bool)
    n, n_classes = sets.shape
    names = [str(c) for c in (class_names if class_names is not None else range(n_classes))]
    labels = np.full(n, -1) if labels is None else np.asarray(labels, dtype=int).reshape(-1)
    sizes = sets.sum(axis=1)
    labelled = labels >= 0
    covered = sets[np.flatnonzero(labelled), labels[labelled]]
    per_class = {}
    for c, name in enumerate(names):
        mine = labels[labelled] == c
        per_class[name] = round(float(covered[mine].mean()), 6) if mine.any() else None
    r6 = lambda v: round(float(v), 6) if n else None  # noqa: E731
    return {
        "n": int(n),
        "n_labelled": int(labelled.sum()),
        "coverage": round(float(covered.mean()), 6) if labelled.any() else None,
        "coverage_per_class": per_class,
        "mean_set_size": r6(sizes.mean() if n else 0),
        "singleton_share": r6((sizes == 1).mean() if n else 0),
        "empty_share": r6((sizes == 0).mean() if n else 0),
    }


def ood_threshold(valid_scores, false_alarm: float = 0.05) -> float:
    """Threshold of an out-of-distribution score (larger = stranger) at a false-alarm rate ``f`` on validation rows.

    The ``ceil((n + 1)(1 - f))``-th smallest validation score: a row
    exchangeable with them is flagged (score strictly above) with probability
    at most ``f``; ``+inf`` (never flag) when ``n`` is too small for ``f``.

    Arguments
    ---------
    valid_scores : array-like
        ``(n,)`` scores of in-distribution validation rows.
    false_alarm : float
        Share of in-distribution rows that may be flagged.

    Returns
    -------
    float

    Example
    -------
    >>> ood_threshold(np.arange(1, 20), 0.1)  # rank ceil(20 * 0.9) = 18 of 19
    18.0
    >>> ood_flags([17.5, 18.0, 30.0], 18.0).tolist()
    [False, False, True]
    """
    return conformal_quantile(valid_scores, false_alarm)


def ood_flags(scores, threshold: float | None) -> np.ndarray:
    """Boolean flags: ``score > threshold`` (see :func:`ood_threshold`; ``None`` stands for ``+inf``: never)."""
    return np.asarray(scores, dtype=np.float64) > (math.inf if threshold is None else float(threshold))
