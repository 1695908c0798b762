"""Calibration of class probabilities: temperature scaling, NLL, reliability bins, and abstention by confidence.

- :func:`fit_temperature`: one scalar ``T`` (Guo et al. 2017) minimising the
  NLL of ``softmax(z / T)`` on labelled validation rows, ``z`` the logits or
  log-probabilities (a row's log-probabilities are its logits up to a
  constant, which softmax ignores; probabilities from an MC mean or a kNN
  interpolation enter as their logarithm, floored at ``1e-12``). The NLL is
  convex in ``1 / T``; a bounded scalar search (Brent, scipy) over
  ``log T`` in ``[log 0.01, log 100]`` finds it. ``T > 1`` softens
  over-confident probabilities; the argmax, hence UAR and WA, never changes.
- :func:`reliability_bins`: the equal-width confidence bins of the reliability
  diagram and of the expected calibration error (the bins of
  :func:`speechbrain_ext.nn.uncertainty.expected_calibration_error`).
- :func:`risk_coverage`: the risk-coverage curve of abstaining by confidence
  (Geifman and El-Yaniv 2017): rows kept in decreasing order of their top
  probability, the error rate of those kept against the share kept, and the
  area under it (AURC; lower is better; with no equal confidences it is the
  mean of the selective risks over ``k = 1..n`` kept rows).
"""

from __future__ import annotations

import math

import numpy as np

PROBABILITY_FLOOR = 1e-12
TEMPERATURE_BOUNDS = (0.01, 100.0)


def log_probabilities(probs, floor: float = PROBABILITY_FLOOR) -> np.ndarray:
    """``log(max(p, floor))``: probabilities as logits for temperature scaling.

    Example
    -------
    >>> log_probabilities([[1.0, 0.0]]).round(2).tolist()
    [[0.0, -27.63]]
    """
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), floor))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(z / T)`` (stable).

    Example
    -------
    >>> softmax([[0.0, np.log(3.0)]]).round(3).tolist()
    [[0.25, 0.75]]
    >>> softmax([[0.0, np.log(3.0)]], temperature=1e9).round(3).tolist()
    [[0.5, 0.5]]
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(probs, labels, floor: float = PROBABILITY_FLOOR) -> float:
    """Mean ``-log p_y`` of labelled rows (probabilities floored at ``floor``).

    Example
    -------
    >>> round(negative_log_likelihood([[0.5, 0.5], [0.9, 0.1]], [0, 0]), 4)
    0.3993
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int).reshape(-1)
    if len(labels) == 0:
        return math.nan
    return float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], floor)).mean())


def temperature_nll(logits, labels, temperature: float) -> float:
    """NLL of ``softmax(logits / T)`` (log-sum-exp form, exact for large logits).

    Example
    -------
    >>> round(temperature_nll([[0.0, 0.0]], [1], 2.0), 4)
    0.6931
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float((lse - z[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, tol: float = 1e-7) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on labelled rows.

    Arguments
    ---------
    logits : array-like
        ``(n, n_classes)`` logits or log-probabilities (:func:`log_probabilities` of probabilities).
    labels : array-like
        ``(n,)`` true classes.
    bounds : (float, float)
        Search interval of ``T``; the optimum is clipped to it.
    tol : float
        Absolute tolerance on ``log T``.

    Returns
    -------
    float
        1.0 when there are no rows.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 2000)
    >>> true_logits = rng.normal(size=(2000, 3)) + 2.0 * np.eye(3)[labels]
    >>> truth = softmax(true_logits)
    >>> sampled = np.array([rng.choice(3, p=p) for p in truth])  # labels drawn from softmax(true_logits)
    >>> 2.5 < fit_temperature(3.0 * true_logits, sampled) < 3.5  # logits 3x too sharp: T near 3
    True
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    if len(labels) == 0:
        return 1.0
    low, high = math.log(bounds[0]), math.log(bounds[1])
    result = minimize_scalar(
        lambda log_t: temperature_nll(logits, labels, math.exp(log_t)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": tol},
    )
    return float(math.exp(min(max(result.x, low), high)))


def reliability_bins(probs, labels, n_bins: int = 15) -> dict:
    """Equal-width confidence bins ``(i/n, (i+1)/n]`` of the top probability: count, mean confidence, accuracy; and the ECE.

    Arguments
    ---------
    probs : array-like
        ``(n, n_classes)`` probabilities.
    labels : array-like
        ``(n,)`` true classes.
    n_bins : int
        Number of bins.

    Returns
    -------
    dict
        ``edges`` (``n_bins + 1``), ``count``, ``confidence`` and ``accuracy``
        per bin (``None`` for an empty bin), ``ece``.

    Example
    -------
    >>> bins = reliability_bins([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10)
    >>> bins["count"][5], bins["accuracy"][5], bins["ece"]
    (1, 0.0, 0.35)
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int).reshape(-1)
    confidence = probs.max(axis=1) if len(labels) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64) if len(labels) else np.zeros(0)
    which = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, confidence, n_bins)
    acc_sum = np.bincount(which, correct, n_bins)
    mean = lambda s: [round(float(v / c), 6) if c else None for v, c in zip(s, count)]  # noqa: E731
    ece = float(np.abs(acc_sum - conf_sum).sum() / len(labels)) if len(labels) else 0.0
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1).round(6).tolist(),
        "count": count.tolist(),
        "confidence": mean(conf_sum),
        "accuracy": mean(acc_sum),
        "ece": round(ece, 10),
    }


def risk_coverage(probs, labels) -> dict:
    """Risk-coverage curve of abstaining by confidence, and its area.

    Rows are kept from the most to the least confident (top probability);
    rows of equal confidence are kept or left out together, so the curve has
    one point per distinct confidence: ``coverage`` (share kept),
    ``accuracy`` and ``risk`` (``1 - accuracy``) of the kept rows, and the
    ``threshold`` (the smallest confidence kept). ``aurc`` is
    ``sum_j (c_j - c_{j-1}) * risk_j`` (``c_0 = 0``), which without equal
    confidences is the mean selective risk over ``k = 1..n`` kept rows;
    ``area_accuracy = 1 - aurc``.

    Arguments
    ---------
    probs : array-like
        ``(n, n_classes)`` probabilities.
    labels : array-like
        ``(n,)`` true classes.

    Returns
    -------
    dict
        ``coverage``, ``risk``, ``accuracy``, ``threshold`` (arrays), ``aurc``, ``area_accuracy``, ``full_risk``.

    Example
    -------
    >>> rc = risk_coverage([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]], [0, 0, 0, 1])
    >>> rc["coverage"].tolist(), rc["risk"].round(3).tolist()
    ([0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.333, 0.25])
    >>> round(rc["aurc"], 4)  # (0 + 0 + 1/3 + 1/4) / 4
    0.1458
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int).reshape(-1)
    n = len(labels)
    if n == 0:
        empty = np.zeros(0)
        return {
            "coverage": empty,
            "risk": empty,
            "accuracy": empty,
            "threshold": empty,
            "aurc": math.nan,
            "area_accuracy": math.nan,
            "full_risk": math.nan,
        }
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    conf, errors = confidence[order], np.cumsum(probs[order].argmax(axis=1) != labels[order])
    last = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))  # the last row of each group of equal confidence
    kept = last + 1
    coverage, risk = kept / n, errors[last] / kept
    aurc = float((np.diff(coverage, prepend=0.0) * risk).sum())
    return {
        "coverage": coverage,
        "risk": risk,
        "accuracy": 1.0 - risk,
        "threshold": conf[last],
        "aurc": aurc,
        "area_accuracy": 1.0 - aurc,
        "full_risk": float(risk[-1]),
    }
