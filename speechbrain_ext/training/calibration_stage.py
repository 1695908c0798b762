"""Post-training stage: decisions a user can trust (temperature, conformal prediction sets, abstention, OOD flags).

:class:`CalibrationStage` runs after the Bayesian and kNN stages on the
probabilities each report holds at that point
(:meth:`~speechbrain_ext.training.post_training.StageContext.report_decisions`):
``run`` is ``<split>_report.json`` (the model's probabilities, or the
Bayesian head's MC means once that stage ran), ``knn`` is
``knn/<split>_report.json`` (the kNN-interpolated probabilities, when the kNN
stage ran). For each, fitted on the **validation split only** (test is
never seen by the fit):

1. temperature scaling (:func:`~speechbrain_ext.evaluation.calibration.fit_temperature`,
   on the log-probabilities);
2. split-conformal prediction sets at ``alpha`` on the temperature-scaled
   probabilities (:mod:`speechbrain_ext.evaluation.conformal`: ``lac`` or
   ``aps``, not randomised unless asked, Mondrian per class as an option);
3. out-of-distribution thresholds at ``ood_false_alarm`` on valid, where the
   run has the score: the distance of an embedding to its ``k``-th
   neighbour in the kNN datastore (kNN stage; valid rows against the
   train-only datastore they were tuned with, test rows against the
   train+valid datastore that inference uses), and the Bayesian head's mutual
   information (Bayesian stage).

Valid and test rows must be exchangeable for the guarantees to hold (a
speaker-independent split is a shift the guarantee does not cover; the
reported test coverage shows how far it holds).

Files (beside each report: the run folder, and ``knn/``):
``test_report.json``/``.md`` gain ``conformal`` (``alpha``, ``method``,
``mondrian``, ``randomized``, ``quantile``, ``n_calibration``, ``n``,
``n_labelled``, ``coverage`` and ``coverage_per_class`` on the labelled
test rows, ``mean_set_size``, ``singleton_share``, ``empty_share`` over all
test rows), ``calibration`` (``temperature``; ``ece_before``/``ece_after``,
``nll_before``/``nll_after`` on test, ``valid_*`` the same on valid),
``risk_coverage`` (``aurc``, ``area_accuracy``, ``full_risk``: abstaining by
the calibrated confidence) and ``ood`` (per score: ``threshold`` and the
test ``flag_rate``); ``test_prediction_sets.csv`` (``id, true, predicted,
confidence, set, set_size`` and one ``ood_<score>`` 0/1 column per score;
``set`` lists the labels by decreasing probability, joined by ``|``);
``test_reliability.png`` (before and after temperature) and
``test_risk_coverage.png``. Unlabelled test rows (a masked challenge
partition) get sets and flags; coverage, ECE and the curve need labels and
are ``null`` then.

``calibration.json`` (in the run folder) holds what inference needs::

    {
      "version": 1,
      "checkpoint": "CKPT+...",        # the stage-one checkpoint everything was fitted for
      "fitted_on": "valid",
      "labels": ["ang", ...],           # class names in index order
      "alpha": 0.1, "method": "aps", "mondrian": false, "randomized": false,
      "seed": 0,                        # randomised APS: seed of the calibration draws (test rows: seed + 1)
      "default": "run" | "knn",         # the entry an exported model answers with (knn when knn_datastore.pt exists; null: none)
      "entries": {
        "run": {                        # and "knn" when the kNN stage ran
          "probabilities": "model" | "bayes" | "knn",
          "report": "test_report.json", # relative to the run folder
          "temperature": 1.23,          # p = softmax(log(max(p_raw, 1e-12)) / temperature)
          "quantile": 0.87,             # qhat (a list, one per class, when mondrian); null = no finite quantile: every
                                        # class is in the set. y is in the set when score(p, y) <= qhat (or qhat[y])
          "n_calibration": 120, "class_counts": [...],
          "scores": [0.02, ...],        # the n_calibration valid nonconformity scores s(x, y) of the true labels,
                                        # sorted, full precision: qhat at any alpha is
                                        # conformal.conformal_quantile(scores, alpha) (quantile above, at "alpha")
          "class_scores": [[...], ...]  # Mondrian only: the sorted scores of each class (qhat[y] at any alpha)
        }
      },
      "ood": {                          # only the scores this run has
        "knn_distance": {"threshold": 3.2, "false_alarm": 0.05, "k": 8, "n_valid": 120,
                         "applies_to": "..."},  # flagged when the score > threshold (null: never)
        "mutual_information": {"threshold": 0.01, "false_alarm": 0.05, "mc_samples": 500, "n_valid": 120,
                               "applies_to": "..."}
      }
    }
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.evaluation.calibration import (
    fit_temperature,
    log_probabilities,
    negative_log_likelihood,
    reliability_bins,
    risk_coverage,
    softmax,
)
from speechbrain_ext.evaluation.conformal import METHODS, conformal_sets, fit_conformal, ood_threshold, set_metrics
from speechbrain_ext.evaluation.plots import plot_reliability, plot_risk_coverage
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.nn.uncertainty import expected_calibration_error
from speechbrain_ext.training.post_training import require_classification
from speechbrain_ext.utils.fileio import atomic_write_text

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
SCHEMA_VERSION = 1
SECTION_MARK = "## Calibration and prediction sets"
OOD_SCORES = {
    "knn_distance": "Euclidean distance of the utterance embedding (the head's input) to its k-th nearest "
    "neighbour in knn_datastore.pt (train+valid); valid rows were scored against the train-only datastore",
    "mutual_information": "mutual information (nats) of the Bayesian head's mc_samples weight draws, "
    "H[mean p] - mean H[p], seeded as the reports",
}


def _finite(value):
    """JSON-safe quantile or threshold: ``None`` for ``+inf``."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if value is None or not np.isfinite(value) else round(float(value), 8)


def _r6(value):
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


class CalibrationStage:
    """Temperature, split-conformal sets and OOD thresholds fitted on valid; reported on test (see the module docstring).

    Arguments
    ---------
    alpha : float
        Miscoverage rate of the prediction sets (they hold the true label with probability ``>= 1 - alpha``).
    method : str
        Nonconformity score: ``aps`` (adaptive sets) or ``lac`` (``1 - p_y``).
    mondrian : bool
        Class-conditional sets (one quantile per class).
    ood_false_alarm : float
        Share of in-distribution (valid) rows an OOD threshold may flag.
    randomized : bool
        Randomised APS (seeded ``u ~ U(0, 1)`` per row); the default keeps sets deterministic.
    n_bins : int
        Confidence bins of the ECE and the reliability diagram.
    seed : int
        Seed of the randomised APS draws.
    enabled : bool
        Run the stage (``calibrate`` in the YAMLs).

    Example
    -------
    >>> CalibrationStage(alpha=0.1, method="lac").method
    'lac'
    """

    def __init__(
        self,
        alpha: float = 0.1,
        method: str = "aps",
        mondrian: bool = False,
        ood_false_alarm: float = 0.05,
        randomized: bool = False,
        n_bins: int = 15,
        seed: int = 0,
        enabled: bool = True,
    ):
        if method not in METHODS:
            raise ValueError(f"conformal method must be one of {METHODS}, got {method!r}")
        for name, value in (("alpha", alpha), ("ood_false_alarm", ood_false_alarm)):
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {value}")
        self.alpha, self.method, self.mondrian = float(alpha), method, bool(mondrian)
        self.ood_false_alarm, self.randomized = float(ood_false_alarm), bool(randomized)
        self.n_bins, self.seed, self.enabled = int(n_bins), int(seed), bool(enabled)

    def run(self, context) -> dict:
        """Fit on valid, report test, write ``calibration.json``; returns its content."""
        task = require_classification(context, "calibration")
        labels, folder = task.labels, context.output_folder
        ood = self.ood_thresholds(context.ood_scores)
        entries = {}
        for name, splits in context.report_decisions().items():
            if "valid" in splits and "test" in splits:
                entry = self.calibrate_report(splits["valid"], splits["test"], labels, ood, context.ood_scores)
                if entry is not None:
                    entry["report"] = str((Path(splits["test"]["folder"]) / "test_report.json").relative_to(folder))
                    print(calibration_summary(name, json.loads((folder / entry["report"]).read_text())))
                    entries[name] = entry
                    if name == "run" and "test" in context.reports:
                        context.reports["test"] = json.loads((folder / "test_report.json").read_text())
        default = "knn" if "knn" in entries and (folder / "knn_datastore.pt").is_file() else "run"
        document = {
            "version": SCHEMA_VERSION,
            "checkpoint": context.checkpoint_tag,
            "fitted_on": "valid",
            "labels": list(labels),
            "alpha": self.alpha,
            "method": self.method,
            "mondrian": self.mondrian,
            "randomized": self.randomized and self.method == "aps",
            "seed": self.seed,
            "default": default if default in entries else None,
            "entries": entries,
            "ood": {name: {k: v for k, v in item.items() if k != "valid_flag_rate"} for name, item in ood.items()},
        }
        atomic_write_text(folder / CALIBRATION_FILE, json.dumps(document, indent=2) + "\n")
        return document

    def ood_thresholds(self, ood_scores: dict) -> dict:
        """Score name -> threshold at ``ood_false_alarm`` on its valid rows, with its settings."""
        out = {}
        for name, item in ood_scores.items():
            if "valid" not in item:
                continue
            scores = np.asarray(item["valid"][1], dtype=np.float64)
            threshold = ood_threshold(scores, self.ood_false_alarm)
            out[name] = {
                "threshold": _finite(threshold),
                "false_alarm": self.ood_false_alarm,
                **{k: v for k, v in item.items() if k not in ("valid", "test")},
                "n_valid": int(len(scores)),
                "valid_flag_rate": _r6(float((scores > threshold).mean())) if len(scores) else None,
                "applies_to": OOD_SCORES.get(name, name),
            }
        return out

    def calibrate_report(self, valid: dict, test: dict, labels, ood: dict, ood_scores: dict) -> dict | None:
        """Fit one report's temperature and sets on ``valid``; write its test files; return its ``calibration.json`` entry."""
        keep = valid["targets"] >= 0
        if keep.sum() < 2:
            logger.warning("calibration skipped for %s: fewer than 2 labelled validation rows", test["folder"])
            return None
        v_logits, v_labels = log_probabilities(valid["probs"][keep]), valid["targets"][keep]
        temperature = fit_temperature(v_logits, v_labels)
        v_cal = softmax(v_logits, temperature)
        t_raw = np.asarray(test["probs"], dtype=np.float64)
        t_cal = softmax(log_probabilities(t_raw), temperature)
        fit = fit_conformal(v_cal, v_labels, self.alpha, self.method, self.mondrian, self.randomized, self.seed)
        sets = conformal_sets(t_cal, fit, seed=self.seed + 1)
        targets = np.asarray(test["targets"], dtype=int)
        labelled = targets >= 0
        conformal = {
            "alpha": self.alpha,
            "method": self.method,
            "mondrian": self.mondrian,
            "randomized": fit["randomized"],
            "quantile": _finite(fit["quantile"]),
            "n_calibration": fit["n_calibration"],
            **set_metrics(sets, targets, labels),
        }
        calibration = {"temperature": round(temperature, 6), "fitted_on": "valid", "n_valid": int(keep.sum())}
        for prefix, probs_before, probs_after, truth in (
            ("valid_", valid["probs"][keep], v_cal, v_labels),
            ("", t_raw[labelled], t_cal[labelled], targets[labelled]),
        ):
            scored = len(truth) > 0
            for when, probs in (("before", probs_before), ("after", probs_after)):
                ece = expected_calibration_error(probs, truth, self.n_bins) if scored else None
                calibration[f"{prefix}ece_{when}"] = _r6(ece) if scored else None
                calibration[f"{prefix}nll_{when}"] = _r6(negative_log_likelihood(probs, truth)) if scored else None
        folder = Path(test["folder"])
        section = {"conformal": conformal, "calibration": calibration}
        if labelled.any():
            curve = risk_coverage(t_cal[labelled], targets[labelled])
            section["risk_coverage"] = {
                "aurc": _r6(curve["aurc"]),
                "area_accuracy": _r6(curve["area_accuracy"]),
                "full_risk": _r6(curve["full_risk"]),
                "confidence": "temperature-scaled top probability",
            }
            self._plots(folder, t_raw[labelled], t_cal, labelled, targets, curve, temperature)
        flags = self._ood_flags(test["ids"], ood, ood_scores)
        if flags:
            section["ood"] = {
                name: {
                    "threshold": ood[name]["threshold"],
                    "false_alarm": self.ood_false_alarm,
                    "flag_rate": _r6(float(f[known].mean())) if (known := ~np.isnan(f)).any() else None,
                    "valid_flag_rate": ood[name]["valid_flag_rate"],
                }
                for name, f in flags.items()
            }
        self._write_sets(folder, test["ids"], targets, t_cal, sets, labels, flags)
        self._update_report(folder, section)
        return {
            "probabilities": test["method"],
            "temperature": round(temperature, 8),
            "quantile": _finite(fit["quantile"]),
            "n_calibration": fit["n_calibration"],
            "class_counts": fit["class_counts"],
            "scores": fit["scores"],
            **({"class_scores": fit["class_scores"]} if self.mondrian else {}),
        }

    @staticmethod
    def _ood_flags(ids, ood: dict, ood_scores: dict) -> dict:
        """Score name -> ``(n,)`` flags of the test rows (1.0/0.0; NaN where a row has no score)."""
        out = {}
        for name, item in ood.items():
            if "test" not in ood_scores.get(name, {}):
                continue
            score_ids, scores = ood_scores[name]["test"]
            by_id = dict(zip(score_ids, np.asarray(scores, dtype=np.float64)))
            threshold = np.inf if item["threshold"] is None else item["threshold"]
            values = np.array([by_id.get(i, np.nan) for i in ids], dtype=np.float64)
            out[name] = np.where(np.isnan(values), np.nan, (values > threshold).astype(np.float64))
        return out

    def _plots(self, folder: Path, raw, calibrated, labelled, targets, curve, temperature: float) -> None:
        after = reliability_bins(calibrated[labelled], targets[labelled], self.n_bins)
        before = reliability_bins(raw, targets[labelled], self.n_bins)
        plot_reliability(after, folder / "test_reliability.png", f"test: temperature {temperature:.3f}", before=before)
        plot_risk_coverage(curve, folder / "test_risk_coverage.png", "test: abstaining by confidence")

    @staticmethod
    def _write_sets(folder: Path, ids, targets, probs, sets, labels, flags: dict) -> None:
        order = np.argsort(-probs, axis=1, kind="stable")
        members = ["|".join(labels[c] for c in row_order if row_set[c]) for row_order, row_set in zip(order, sets)]
        frame = pd.DataFrame(
            {
                "id": list(ids),
                "true": [labels[t] if t >= 0 else "" for t in targets],
                "predicted": [labels[p] for p in probs.argmax(axis=1)],
                "confidence": probs.max(axis=1),
                "set": members,
                "set_size": sets.sum(axis=1),
                **{f"ood_{n}": ["" if np.isnan(v) else str(int(v)) for v in f] for n, f in flags.items()},
            }
        )
        atomic_write_text(folder / "test_prediction_sets.csv", csv_text(frame))

    @staticmethod
    def _update_report(folder: Path, section: dict) -> None:
        """Add the sections to ``test_report.json`` and their table to ``test_report.md`` (replacing an earlier one)."""
        path = folder / "test_report.json"
        report = json.loads(path.read_text()) if path.is_file() else {}
        report.update(section)
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
        md = folder / "test_report.md"
        text = md.read_text() if md.is_file() else ""
        text = text.split(f"\n{SECTION_MARK}")[0].rstrip("\n")
        atomic_write_text(md, f"{text}\n\n{calibration_markdown(section)}\n")


def calibration_summary(name: str, report: dict) -> str:
    """One line of a calibrated report for the run's output.

    Example
    -------
    >>> report = {"calibration": {"temperature": 1.5}, "conformal": {"method": "aps", "alpha": 0.1, "coverage": 0.9, "mean_set_size": 2.0}}
    >>> calibration_summary("run", report)
    'calibration (run): temperature 1.500, APS sets at alpha 0.10: test coverage 90.00 %, mean set size 2.00'
    """
    conf = report["conformal"]
    coverage = "-" if conf["coverage"] is None else f"{100 * conf['coverage']:.2f} %"
    return (
        f"calibration ({name}): temperature {report['calibration']['temperature']:.3f}, {conf['method'].upper()} sets "
        f"at alpha {conf['alpha']:.2f}: test coverage {coverage}, mean set size {conf['mean_set_size']:.2f}"
    )


def calibration_markdown(section: dict) -> str:
    """The Markdown of a report's calibration sections (``conformal``, ``calibration``, ``risk_coverage``, ``ood``).

    Example
    -------
    >>> conformal = {"method": "aps", "alpha": 0.1, "n": 4, "n_labelled": 4, "coverage": 0.75, "mean_set_size": 1.5,
    ...              "singleton_share": 0.5, "coverage_per_class": {"a": 1.0, "b": 0.5}}
    >>> calibration = {"temperature": 1.5, "ece_before": 0.2, "ece_after": 0.1, "nll_before": 0.9, "nll_after": 0.7}
    >>> print(calibration_markdown({"conformal": conformal, "calibration": calibration}))
    ## Calibration and prediction sets (fitted on valid)
    <BLANKLINE>
    temperature 1.500; test ECE 20.00 % -> 10.00 %, NLL 0.9000 -> 0.7000
    <BLANKLINE>
    | conformal (APS, alpha 0.10) | n | coverage % | mean set size | singletons % | a | b |
    |---|---|---|---|---|---|---|
    | test | 4 | 75.00 | 1.500 | 50.0 | 100.0 | 50.0 |
    """
    pct = lambda v, d=2: "-" if v is None else f"{100 * v:.{d}f}"  # noqa: E731
    num = lambda v, d=4: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    cal, conf = section["calibration"], section["conformal"]
    lines = [f"{SECTION_MARK} (fitted on valid)", ""]
    where = "test" if cal.get("ece_before") is not None else "valid"  # a masked test split: the fit's own figures
    prefix = "" if where == "test" else "valid_"
    lines.append(
        f"temperature {cal['temperature']:.3f}; {where} ECE {pct(cal[f'{prefix}ece_before'])} % -> "
        f"{pct(cal[f'{prefix}ece_after'])} %, NLL {num(cal[f'{prefix}nll_before'])} -> {num(cal[f'{prefix}nll_after'])}"
        + ("" if where == "test" else " (the test split has no labels)")
    )
    classes = list(conf["coverage_per_class"])
    lines += [
        "",
        f"| conformal ({conf['method'].upper()}{', Mondrian' if conf.get('mondrian') else ''}, alpha {conf['alpha']:.2f})"
        " | n | coverage % | mean set size | singletons % | " + " | ".join(classes) + " |",
        "|---" * (5 + len(classes)) + "|",
        f"| test | {conf['n']} | {pct(conf['coverage'])} | {num(conf['mean_set_size'], 3)} | "
        f"{pct(conf['singleton_share'], 1)} | "
        + " | ".join(pct(v, 1) for v in conf["coverage_per_class"].values())
        + " |",
    ]
    if "risk_coverage" in section:
        rc = section["risk_coverage"]
        lines += [
            "",
            f"risk-coverage (abstaining by confidence): AURC {num(rc['aurc'])}, accuracy area "
            f"{num(rc['area_accuracy'])} (test_risk_coverage.png; reliability: test_reliability.png)",
        ]
    for name, item in section.get("ood", {}).items():
        threshold = "(too few valid rows: never)" if item["threshold"] is None else f"> {item['threshold']:.4g}"
        lines += [
            "",
            f"out of distribution, {name} {threshold} (false alarm {pct(item['false_alarm'], 0)} % on valid): "
            f"flags {pct(item['flag_rate'], 1)} % of test",
        ]
    return "\n".join(lines)
