"""The calibration an exported model carries (``calibration.ckpt``): temperature, conformal sets at any alpha, OOD flags.

``hub export`` copies the run's ``calibration.json``
(:mod:`speechbrain_ext.training.calibration_stage`, fitted on the validation
split) into the model folder as ``calibration.ckpt``, with ``entry``: the
entry the exported model answers with (``knn`` when the folder carries the kNN
datastore, else ``run``). :class:`ModelCalibration` is its loadable (as
:class:`~speechbrain_ext.nn.knn.KNNDatastore` is ``knn.ckpt``'s) and does at
inference what the stage did on the test split, with the same library
functions (:mod:`speechbrain_ext.evaluation.conformal`,
:mod:`speechbrain_ext.evaluation.calibration`):

- ``p = softmax(log(max(p_raw, 1e-12)) / temperature)``;
- ``qhat`` at any ``alpha``: :func:`~speechbrain_ext.evaluation.conformal.conformal_quantile`
  of the entry's sorted validation scores (per class for Mondrian sets), so
  the run's ``alpha`` gives exactly the stage's quantile and sets;
- the set ``{y : s(x, y) <= qhat}`` (``lac`` or ``aps`` scores), labels by decreasing probability;
- out-of-distribution flags: a score above its threshold (``knn_distance``,
  ``mutual_information``).

The ONNX export carries the same values in the graph's metadata
(:meth:`ModelCalibration.metadata`, :meth:`ModelCalibration.from_metadata`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from speechbrain_ext.evaluation.calibration import log_probabilities, softmax
from speechbrain_ext.evaluation.conformal import conformal_quantile, conformal_sets, ood_flags

METADATA_KEY = "calibration"  # the ONNX metadata_props key holding the JSON of one entry
META_FIELDS = ("labels", "alpha", "method", "mondrian", "randomized", "seed", "fitted_on", "checkpoint")


@dataclass
class PredictionSet:
    """A split-conformal prediction set of one input, with its out-of-distribution flags.

    ``labels`` are by decreasing (temperature-scaled) probability; at
    ``alpha`` the set holds the true label with probability ``>= 1 - alpha``
    on inputs exchangeable with the run's validation split. ``ood`` maps a
    score name (``knn_distance``, ``mutual_information``) to whether it is
    above the run's threshold (the input looks unlike the training data);
    only the scores the model and the call have.
    """

    labels: list[str]
    alpha: float
    method: str
    ood: dict[str, bool] = field(default_factory=dict)


class ModelCalibration:
    """Temperature, split-conformal sets at any ``alpha`` and OOD thresholds of an exported model.

    Arguments
    ---------
    document : dict, optional
        The content of ``calibration.json`` (``entries``, ``alpha``, ``method``, ...), with ``entry``
        naming the entry the model answers with (default: the document's ``default``, else ``run``).

    Example
    -------
    >>> doc = {"labels": ["a", "b", "c"], "alpha": 0.25, "method": "lac", "mondrian": False, "randomized": False,
    ...        "entries": {"run": {"temperature": 1.0, "scores": [0.1, 0.2, 0.3, 0.4]}}, "ood": {}}
    >>> cal = ModelCalibration(doc)
    >>> cal.quantile(), cal.quantile(0.5)  # ranks ceil(5 * 0.75) = 4 and ceil(5 * 0.5) = 3
    (0.4, 0.3)
    >>> cal.sets([[0.7, 0.1, 0.2]], alpha=0.25)  # 1 - p <= 0.4: only "a"
    [['a']]
    >>> cal.sets([[0.5, 0.1, 0.4]], alpha=0.1)  # no finite quantile with 4 scores: every class, most probable first
    [['a', 'c', 'b']]
    """

    def __init__(self, document: dict | None = None):
        self.document = None
        if document is not None:
            self.set_document(document)

    def set_document(self, document: dict) -> None:
        entries = document.get("entries") or {}
        name = document.get("entry") or document.get("default") or "run"
        if name not in entries:
            raise ValueError(f"calibration: no entry {name!r} (entries: {sorted(entries)})")
        for key, entry in entries.items():
            if "scores" not in entry:
                raise ValueError(
                    f"calibration entry {key!r} has no validation scores (a run calibrated before they were saved): "
                    "re-run its calibration stage"
                )
        self.document, self.entry = document, name

    def save(self, path) -> None:
        """Write the calibration document as JSON."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.document, handle)

    def load(self, path, end_of_epoch: bool = False) -> None:
        """Read a calibration document (``calibration.json`` or an exported ``calibration.ckpt``)."""
        with open(path, encoding="utf-8") as handle:
            self.set_document(json.load(handle))

    @property
    def labels(self) -> list[str]:
        return list(self.document["labels"])

    @property
    def alpha(self) -> float:
        """The ``alpha`` the run was calibrated at (its reports' coverage is at this one)."""
        return float(self.document["alpha"])

    @property
    def method(self) -> str:
        return self.document["method"]

    def _entry(self, entry: str | None) -> dict:
        return self.document["entries"][entry or self.entry]

    def has_entry(self, entry: str) -> bool:
        return entry in self.document["entries"]

    def temperature(self, entry: str | None = None) -> float:
        """The entry's temperature (``entry`` default: the one the model answers with)."""
        return float(self._entry(entry)["temperature"])

    def scale(self, probs, entry: str | None = None) -> np.ndarray:
        """Temperature-scaled probabilities ``(n, n_classes)`` of raw probabilities."""
        return softmax(log_probabilities(np.asarray(probs, dtype=np.float64)), self.temperature(entry))

    def quantile(self, alpha: float | None = None, entry: str | None = None):
        """``qhat`` at ``alpha`` (default the run's) from the stored validation scores: a float, or one per class (Mondrian)."""
        item = self._entry(entry)
        alpha = self.alpha if alpha is None else float(alpha)
        if self.document.get("mondrian"):
            return [conformal_quantile(scores, alpha) for scores in item["class_scores"]]
        return conformal_quantile(item["scores"], alpha)

    def set_masks(self, probs, alpha: float | None = None, entry: str | None = None) -> np.ndarray:
        """Boolean ``(n, n_classes)`` set membership of calibrated (temperature-scaled) probabilities."""
        fit = {
            "method": self.method,
            "quantile": self.quantile(alpha, entry),
            "randomized": bool(self.document.get("randomized")),
        }
        return conformal_sets(probs, fit, seed=int(self.document.get("seed", 0)) + 1)

    def sets(self, probs, alpha: float | None = None, entry: str | None = None) -> list[list[str]]:
        """The sets of calibrated probabilities ``(n, n_classes)``: labels by decreasing probability."""
        probs = np.asarray(probs, dtype=np.float64)
        masks, labels = self.set_masks(probs, alpha, entry), self.labels
        order = np.argsort(-probs, axis=1, kind="stable")
        return [[labels[c] for c in row if mask[c]] for row, mask in zip(order, masks)]

    def ood(self, name: str) -> dict | None:
        """The threshold settings of an OOD score (``knn_distance``, ``mutual_information``), or None."""
        return (self.document.get("ood") or {}).get(name)

    def flags(self, name: str, scores) -> list[bool] | None:
        """``score > threshold`` of an OOD score (None when the run has no threshold for it)."""
        item = self.ood(name)
        return None if item is None else ood_flags(scores, item["threshold"]).tolist()

    def answer(self, probs, alpha: float | None = None, entry: str | None = None, ood_scores: dict | None = None):
        """:class:`PredictionSet` of each row of calibrated probabilities, flagged by the given OOD scores.

        Arguments
        ---------
        probs : array-like
            ``(n, n_classes)`` temperature-scaled probabilities (:meth:`scale`).
        alpha : float, optional
            Miscoverage (default the run's).
        entry : str, optional
            ``run`` or ``knn`` (default: the one the model answers with).
        ood_scores : dict, optional
            Score name -> ``(n,)`` values; names without a threshold are skipped.

        Returns
        -------
        list of PredictionSet

        Example
        -------
        >>> doc = {"labels": ["a", "b"], "alpha": 0.25, "method": "lac", "entries": {"run": {"temperature": 1.0,
        ...        "scores": [0.1, 0.2, 0.3, 0.4]}}, "ood": {"knn_distance": {"threshold": 1.0, "k": 1}}}
        >>> ModelCalibration(doc).answer([[0.7, 0.3], [0.3, 0.7]], ood_scores={"knn_distance": [0.5, 2.0]})
        [PredictionSet(labels=['a'], alpha=0.25, method='lac', ood={'knn_distance': False}), \
PredictionSet(labels=['b'], alpha=0.25, method='lac', ood={'knn_distance': True})]
        """
        alpha = self.alpha if alpha is None else float(alpha)
        flags = {name: self.flags(name, values) for name, values in (ood_scores or {}).items() if self.ood(name)}
        return [
            PredictionSet(members, alpha, self.method, {name: bool(f[i]) for name, f in flags.items()})
            for i, members in enumerate(self.sets(probs, alpha, entry))
        ]

    def metadata(self, entry: str = "run") -> dict[str, str]:
        """ONNX ``metadata_props`` of one entry: ``temperature`` and ``calibration`` (the entry's JSON, scores included)."""
        doc = {k: self.document[k] for k in META_FIELDS if k in self.document}
        doc.update(entry=entry, entries={entry: self._entry(entry)}, ood={})
        return {"temperature": repr(self.temperature(entry)), METADATA_KEY: json.dumps(doc)}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> ModelCalibration | None:
        """The calibration of an ONNX graph's metadata (None when the graph carries none)."""
        return cls(json.loads(meta[METADATA_KEY])) if METADATA_KEY in meta else None


def require_calibration(calibration: ModelCalibration | None, prediction_set: bool, abstain: float | None) -> bool:
    """Whether a set is asked for; refuses ``prediction_set`` with ``abstain``, and sets of a model without calibration.

    Example
    -------
    >>> require_calibration(None, False, None)
    False
    >>> require_calibration(None, True, None)
    Traceback (most recent call last):
    ...
    ValueError: this model carries no calibration (calibration.ckpt): export a run whose calibration stage ran to get prediction sets or abstentions
    """
    if prediction_set and abstain is not None:
        raise ValueError("prediction_set and abstain are exclusive: abstain returns the set too")
    wanted = bool(prediction_set) or abstain is not None
    if wanted and calibration is None:
        raise ValueError(
            "this model carries no calibration (calibration.ckpt): export a run whose calibration stage ran to get "
            "prediction sets or abstentions"
        )
    return wanted


def calibrated_decision(
    calibration: ModelCalibration | None,
    out_prob: torch.Tensor,
    labels: list[str],
    entry: str = "run",
    prediction_set: bool = False,
    abstain: float | None = None,
    alpha: float | None = None,
    calibrated: bool | None = None,
    ood_scores: dict | None = None,
):
    """``(out_prob, score, index, text_lab[, sets])`` of log-probabilities under a calibration (both interfaces use it).

    Arguments
    ---------
    calibration : ModelCalibration or None
        The model's calibration (None: the raw answer; sets are then refused).
    out_prob : torch.Tensor
        ``(batch, n_classes)`` log-probabilities.
    labels : list of str
        Class labels in index order.
    entry : str
        The calibration entry of these probabilities (``run`` or ``knn``).
    prediction_set, abstain, alpha, calibrated :
        As :meth:`speechbrain_ext.serving.inference.EmotionClassifier.classify_file`.
    ood_scores : dict, optional
        Score name -> ``(batch,)`` values for the sets' OOD flags.

    Returns
    -------
    tuple
        ``out_prob`` (temperature-scaled unless ``calibrated=False``, when calibrated), ``score``, ``index``,
        ``text_lab`` (``None`` where abstaining) and, with ``prediction_set``/``abstain``, a list of :class:`PredictionSet`.

    Example
    -------
    >>> doc = {"labels": ["a", "b"], "alpha": 0.25, "method": "lac", "entries": {"run": {"temperature": 2.0,
    ...        "scores": [0.1, 0.2, 0.3, 0.4]}}}
    >>> out = calibrated_decision(ModelCalibration(doc), torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4]])), ["a", "b"],
    ...                           abstain=0.25)
    >>> [[round(p, 2) for p in row] for row in out[0].exp().tolist()], out[3], [s.labels for s in out[4]]
    ([[0.75, 0.25], [0.55, 0.45]], ['a', None], [['a'], []])
    """
    wanted = require_calibration(calibration, prediction_set, abstain)
    if calibration is not None and (wanted or calibrated):
        probs = calibration.scale(out_prob.detach().float().exp().cpu().numpy(), entry)
        if calibrated is not False:
            out_prob = torch.from_numpy(log_probabilities(probs)).to(out_prob)
    score, index = torch.max(out_prob, dim=-1)
    text_lab = [labels[int(i)] for i in index]
    if not wanted:
        return out_prob, score, index, text_lab
    sets = calibration.answer(probs, abstain if abstain is not None else alpha, entry, ood_scores)
    if abstain is not None:
        text_lab = [s.labels[0] if len(s.labels) == 1 else None for s in sets]
    return out_prob, score, index, text_lab, sets


__all__ = ["METADATA_KEY", "ModelCalibration", "PredictionSet", "calibrated_decision", "require_calibration"]
