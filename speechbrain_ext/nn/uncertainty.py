"""Predictive uncertainty from Monte-Carlo weight samples, and calibration.

With a Bayesian head (:class:`speechbrain_ext.nn.bayesian.BayesianLinear`),
``k`` weight samples give ``k`` posteriors per utterance. Their mean is the
prediction; the spread says how sure the model is (compare2023_bayes_fusion,
Figure 1: correct predictions are more confident than wrong ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speechbrain_ext.evaluation.calibration import reliability_bins


@dataclass
class Predictive:
    """Monte-Carlo summary of ``k`` sampled posteriors per item.

    Attributes
    ----------
    mean_probs : torch.Tensor
        ``(batch, n_classes)`` average of the sampled probabilities.
    std_probs : torch.Tensor
        ``(batch, n_classes)`` per-class standard deviation across samples.
    entropy : torch.Tensor
        ``(batch,)`` predictive entropy ``H[mean p]`` (nats): total uncertainty.
    mutual_information : torch.Tensor
        ``(batch,)`` ``H[mean p] - mean H[p]``: the part due to weight uncertainty.
    confidence : torch.Tensor
        ``(batch,)`` largest mean probability.
    """

    mean_probs: torch.Tensor
    std_probs: torch.Tensor
    entropy: torch.Tensor
    mutual_information: torch.Tensor
    confidence: torch.Tensor


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=-1)


def mc_predictive(sample_logits: torch.Tensor) -> Predictive:
    """Summarise ``(k, batch, n_classes)`` sampled logits (or log-probabilities).

    Arguments
    ---------
    sample_logits : torch.Tensor
        One row of logits per weight sample; softmax is applied here.

    Returns
    -------
    Predictive

    Example
    -------
    >>> same = torch.tensor([[[2.0, 0.0]], [[2.0, 0.0]]])
    >>> mc_predictive(same).mutual_information.abs().item() < 1e-6
    True
    >>> split = torch.tensor([[[9.0, 0.0]], [[0.0, 9.0]]])
    >>> round(mc_predictive(split).mutual_information.item(), 3)
    0.692
    """
    if sample_logits.dim() != 3:
        raise ValueError(f"expected (samples, batch, classes) logits, got shape {tuple(sample_logits.shape)}")
    probs = torch.softmax(sample_logits.float(), dim=-1)
    mean = probs.mean(dim=0)
    entropy = _entropy(mean)
    expected_entropy = _entropy(probs).mean(dim=0)
    std = probs.std(dim=0, unbiased=False)
    return Predictive(mean, std, entropy, (entropy - expected_entropy).clamp_min(0), mean.max(dim=-1).values)


def expected_calibration_error(probs, targets, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|`` where the
    confidence is the top probability; bins are ``(i/n, (i+1)/n]``.

    Arguments
    ---------
    probs : array-like
        ``(N, n_classes)`` probabilities.
    targets : array-like
        ``(N,)`` class indices.
    n_bins : int
        Number of bins.

    Returns
    -------
    float

    Example
    -------
    >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10)
    0.35
    """
    return reliability_bins(probs, targets, n_bins)["ece"]


def confidence_by_correctness(probs, targets) -> dict:
    """Confidence of correct vs wrong predictions (compare2023, Figure 1 statistic).

    Arguments
    ---------
    probs : array-like
        ``(N, n_classes)`` (MC-mean) probabilities.
    targets : array-like
        ``(N,)`` class indices.

    Returns
    -------
    dict
        For ``"correct"`` and ``"wrong"``: ``n``, ``mean``, ``std``, ``median`` of the top probability.

    Example
    -------
    >>> confidence_by_correctness([[0.9, 0.1], [0.6, 0.4]], [0, 1])["wrong"]["mean"]
    0.6
    """
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    out = {}
    for name, sel in (("correct", correct), ("wrong", ~correct)):
        values = confidence[sel]
        out[name] = {
            "n": int(sel.sum()),
            "mean": round(float(values.mean()), 6) if len(values) else None,
            "std": round(float(values.std()), 6) if len(values) else None,
            "median": round(float(np.median(values)), 6) if len(values) else None,
        }
    return out
