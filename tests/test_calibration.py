"""Calibration, conformal prediction sets and OOD flags (issue 26) against references written here.

Temperature against a grid search of the NLL; the conformal quantile and sets
against loops from the definition (and MAPIE for LAC); coverage over 200
seeded random splits of a synthetic task; OOD flags on white noise; and the
calibration stage's outputs in runs the suite already trains (the registry's
RAVDESS baseline, supcon and bayes rows: no run of its own).
"""

import csv
import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from speechbrain_ext.evaluation.calibration import (
    fit_temperature,
    log_probabilities,
    negative_log_likelihood,
    reliability_bins,
    risk_coverage,
    softmax,
)
from speechbrain_ext.evaluation.conformal import (
    conformal_quantile,
    conformal_sets,
    fit_conformal,
    mondrian_quantiles,
    ood_flags,
    ood_threshold,
    prediction_sets,
    score_matrix,
    set_metrics,
)
from speechbrain_ext.nn.uncertainty import expected_calibration_error

ALPHA = 0.1


def synthetic_task(n: int, n_classes: int = 5, seed: int = 0, sharpness: float = 2.5):
    """Imbalanced classes, labels drawn from softmax(true logits), a model 2.5x over-confident about them."""
    rng = np.random.default_rng(seed)
    prior = np.linspace(1.0, 0.25, n_classes)
    y = rng.choice(n_classes, size=n, p=prior / prior.sum())
    true_logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    truth = softmax(true_logits)
    labels = (truth.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)  # a draw from each row's distribution
    return sharpness * true_logits, labels


def test_temperature_matches_a_grid_search_of_the_nll():
    logits, labels = synthetic_task(1500, seed=1)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 2001))
    lse = lambda z: z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))  # noqa: E731
    nll = [float(np.mean(lse(logits / t) - logits[np.arange(len(labels)), labels] / t)) for t in grid]
    best = grid[int(np.argmin(nll))]
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(best, rel=2 * (grid[1] / grid[0] - 1))
    assert 2.0 < fitted < 3.0  # the logits are 2.5x too sharp
    fitted_nll = negative_log_likelihood(softmax(logits, fitted), labels)
    assert fitted_nll <= min(nll) + 1e-7
    # log-probabilities give the same temperature as the logits (softmax ignores a row's constant)
    log_probs = logits - lse(logits)[:, None]
    assert fit_temperature(log_probs, labels) == pytest.approx(fitted, rel=1e-5)
    assert fit_temperature(log_probabilities(np.exp(log_probs)), labels) == pytest.approx(fitted, rel=1e-4)
    # temperature never changes a decision; it lowers the NLL and here the ECE too
    probs = softmax(logits)
    assert (softmax(logits, fitted).argmax(axis=1) == probs.argmax(axis=1)).all()
    assert fitted_nll < negative_log_likelihood(probs, labels)
    assert reliability_bins(softmax(logits, fitted), labels)["ece"] < reliability_bins(probs, labels)["ece"]
    assert reliability_bins(probs, labels)["ece"] == pytest.approx(expected_calibration_error(probs, labels))


def reference_quantile(scores, alpha) -> float:
    """The ceil((n+1)(1-alpha))-th smallest score, the rank in exact rational arithmetic; inf past n."""
    n = len(scores)
    rank = math.ceil((n + 1) * (1 - Fraction(str(alpha))))
    return math.inf if rank > n else sorted(scores)[rank - 1]


def reference_scores(probs, method, offsets) -> np.ndarray:
    """s(x, y) from the definition: LAC 1 - p_y; APS the mass of the classes ranked before y plus u p_y."""
    out = np.zeros_like(probs)
    for i, row in enumerate(probs):
        ranking = sorted(range(len(row)), key=lambda c: (-row[c], c))
        for y in range(len(row)):
            if method == "lac":
                out[i, y] = 1 - row[y]
            else:
                before = ranking[: ranking.index(y)]
                out[i, y] = sum(row[c] for c in before) + offsets[i] * row[y]
    return out


@pytest.mark.parametrize("method,randomized", [("lac", False), ("aps", False), ("aps", True)])
def test_quantile_and_sets_match_loops_from_the_definition(method, randomized):
    rng = np.random.default_rng(3)
    for n in (1, 5, 9, 10, 19, 20, 57):
        for alpha in (0.05, 0.1, 0.2, 0.5):
            scores = rng.random(n).round(2).tolist()  # ties included
            assert conformal_quantile(scores, alpha) == reference_quantile(scores, alpha), (n, alpha)
    logits, labels = synthetic_task(300, n_classes=4, seed=4)
    probs = softmax(logits)
    probs[:5] = [0.4, 0.4, 0.1, 0.1]  # equal probabilities: lower index ranked first
    cal, test = slice(0, 150), slice(150, 300)
    fit = fit_conformal(probs[cal], labels[cal], ALPHA, method, randomized=randomized, seed=7)
    u = np.random.default_rng(7).random(150) if randomized else np.ones(150)
    ref_cal = reference_scores(probs[cal], method, u)
    assert fit["quantile"] == reference_quantile(ref_cal[np.arange(150), labels[cal]].tolist(), ALPHA)
    u_test = np.random.default_rng(8).random(150) if randomized else np.ones(150)
    ref_test = reference_scores(probs[test], method, u_test)
    np.testing.assert_allclose(score_matrix(probs[test], method, u_test), ref_test, atol=1e-12)
    loop_sets = np.array([[s <= fit["quantile"] for s in row] for row in ref_test])
    assert (conformal_sets(probs[test], fit, seed=8) == loop_sets).all()
    # Mondrian: one quantile per class from that class's calibration rows
    per_class = mondrian_quantiles(ref_cal[np.arange(150), labels[cal]], labels[cal], 4, ALPHA)
    for c in range(4):
        mine = ref_cal[np.arange(150), labels[cal]][labels[cal] == c].tolist()
        assert per_class[c] == reference_quantile(mine, ALPHA)
    mondrian = fit_conformal(probs[cal], labels[cal], ALPHA, method, mondrian=True, randomized=randomized, seed=7)
    loop = np.array([[s <= per_class[c] for c, s in enumerate(row)] for row in ref_test])
    assert (conformal_sets(probs[test], mondrian, seed=8) == loop).all()


def test_too_few_calibration_rows_give_full_sets():
    fit = fit_conformal(np.full((5, 3), 1 / 3), [0, 1, 2, 0, 1], alpha=0.1, method="lac")  # rank 6 > 5 rows
    assert fit["quantile"] == math.inf and conformal_sets(np.eye(3), fit).all()
    assert prediction_sets([[0.2, 5.0]], [None, 1.0]).tolist() == [[True, False]]  # None: +inf, as JSON holds it


def test_lac_sets_match_mapie():
    """MAPIE's split-conformal LAC (prefit on given probabilities) gives the same quantile and sets."""
    pytest.importorskip("mapie")
    from mapie.classification import SplitConformalClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Given(ClassifierMixin, BaseEstimator):
        """A prefit 'classifier' whose features are its probabilities."""

        def fit(self, X, y):
            self.classes_ = np.arange(np.asarray(X).shape[1])
            return self

        def predict_proba(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(axis=1)

    logits, labels = synthetic_task(1000, seed=5)
    probs = softmax(logits)
    for alpha in (0.05, 0.1, 0.2):
        mapie = SplitConformalClassifier(Given().fit(probs, labels), confidence_level=1 - alpha, prefit=True)
        mapie.conformity_score = "lac"
        mapie.conformalize(probs[:400], labels[:400])
        _, sets = mapie.predict_set(probs[400:])
        fit = fit_conformal(probs[:400], labels[:400], alpha, "lac")
        assert (conformal_sets(probs[400:], fit) == sets[:, :, 0]).all(), alpha


def test_coverage_over_200_random_splits():
    """Mean test coverage >= 1 - alpha - 0.01 for LAC, APS (plain and randomised) and Mondrian per class."""
    logits, labels = synthetic_task(1000, seed=6)
    probs = softmax(logits)
    rng = np.random.default_rng(2026)
    variants = {
        "lac": {"method": "lac"},
        "aps": {"method": "aps"},
        "aps_randomized": {"method": "aps", "randomized": True},
        "lac_mondrian": {"method": "lac", "mondrian": True},
        "aps_mondrian": {"method": "aps", "mondrian": True},
    }
    covered = {name: [] for name in variants}
    per_class = {name: np.zeros((2, 5)) for name in variants}  # covered, seen
    sizes = {name: [] for name in variants}
    for split in range(200):
        order = rng.permutation(len(labels))
        cal, test = order[:500], order[500:]
        for name, options in variants.items():
            fit = fit_conformal(probs[cal], labels[cal], ALPHA, seed=split, **options)
            sets = conformal_sets(probs[test], fit, seed=10_000 + split)
            hit = sets[np.arange(len(test)), labels[test]]
            covered[name].append(hit.mean())
            sizes[name].append(sets.sum(axis=1).mean())
            per_class[name] += [np.bincount(labels[test], hit, 5), np.bincount(labels[test], minlength=5)]
    for name in variants:
        assert np.mean(covered[name]) >= 1 - ALPHA - 0.01, (name, np.mean(covered[name]))
        assert np.mean(covered[name]) <= 1 - ALPHA + 0.05, name  # not trivially covered by huge sets
        if "mondrian" in name:
            assert (per_class[name][0] / per_class[name][1] >= 1 - ALPHA - 0.01).all(), name
    assert np.mean(sizes["aps_randomized"]) < np.mean(sizes["aps"])  # randomised APS: smaller sets
    assert np.mean(sizes["lac"]) < np.mean(sizes["aps"])  # LAC: the smallest sets on average


def test_set_metrics_and_risk_coverage_match_loops():
    logits, labels = synthetic_task(400, seed=8)
    probs = softmax(logits).round(2)  # equal confidences in groups
    sets = conformal_sets(probs[200:], fit_conformal(probs[:200], labels[:200], ALPHA, "aps"))
    metrics = set_metrics(sets, labels[200:], list("abcde"))
    rows = list(zip(sets, labels[200:]))
    assert metrics["coverage"] == pytest.approx(sum(s[y] for s, y in rows) / 200, abs=1e-6)
    assert metrics["mean_set_size"] == pytest.approx(sum(s.sum() for s, _ in rows) / 200, abs=1e-6)
    assert metrics["singleton_share"] == pytest.approx(sum(s.sum() == 1 for s, _ in rows) / 200, abs=1e-6)
    assert metrics["coverage_per_class"]["c"] == pytest.approx(np.mean([s[y] for s, y in rows if y == 2]), abs=1e-6)
    curve = risk_coverage(probs, labels)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    for c, r, t in zip(curve["coverage"], curve["risk"], curve["threshold"]):
        kept = confidence >= t  # rows of equal confidence are kept together
        assert c == pytest.approx(kept.mean()) and r == pytest.approx(1 - correct[kept].mean())
    strictly = risk_coverage(softmax(logits), labels)  # no equal confidences: AURC = mean selective risk over k
    order = np.argsort(-softmax(logits).max(axis=1))
    errors = np.cumsum(~(softmax(logits).argmax(axis=1) == labels)[order])
    assert strictly["aurc"] == pytest.approx(np.mean(errors / np.arange(1, 401)), abs=1e-12)
    assert strictly["aurc"] < strictly["full_risk"]  # abstaining on the least confident helps


def test_knn_distance_flags_white_noise_not_in_distribution_rows():
    """A threshold at 5 % false alarms on valid (train-only datastore): test rows ~5 %, white noise far more."""
    from speechbrain_ext.nn.knn import KNNInterpolator

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 3

    def split(n):
        y = torch.randint(0, 4, (n,), generator=generator)
        return centres[y] + torch.randn(n, 16, generator=generator), y

    (train, ty), (valid, vy), (test, _) = split(800), split(400), split(400)
    tuning = KNNInterpolator(4)
    tuning.add(train, ty)
    threshold = ood_threshold(tuning.neighbours(valid, 8)[0][:, -1].numpy(), 0.05)
    store = KNNInterpolator(4)
    store.add(torch.cat([train, valid]), torch.cat([ty, vy]))
    noise = train.mean(0) + train.std(0) * torch.randn(400, 16, generator=generator)  # same per-dimension moments
    rates = {
        name: ood_flags(store.neighbours(x, 8)[0][:, -1].numpy(), threshold).mean()
        for name, x in (("test", test), ("noise", noise))
    }
    assert rates["test"] <= 0.1 and rates["noise"] >= 0.9, rates


def test_mutual_information_threshold_flags_shifted_inputs():
    """A Bayesian head's MI, thresholded on valid at 5 %: rows far from the data (white noise) are flagged, test rows rarely."""
    from speechbrain_ext.nn.bayesian import BayesianLinear
    from speechbrain_ext.nn.uncertainty import mc_predictive

    generator = torch.Generator().manual_seed(1)
    layer = BayesianLinear(8, 3, bias=False, prior_sigma=0.3)
    with torch.no_grad():
        layer.weight_mu.copy_(
            torch.tensor([[2.0, 0, 0, 0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0, 0, 0], [0, 0, 2.0, 0, 0, 0, 0, 0]])
        )
        layer.weight_log_sigma.fill_(math.log(0.3))

    def data(n):
        rows = torch.eye(8)[torch.randint(0, 3, (n,), generator=generator)] * 2
        return rows + 0.3 * torch.randn(n, 8, generator=generator)

    def mi(x):
        return mc_predictive(layer.sample(x, 300, seed=0)).mutual_information.numpy()

    threshold = ood_threshold(mi(data(300)), 0.05)
    noise = 3.0 * torch.randn(300, 8, generator=generator)
    assert ood_flags(mi(data(300)), threshold).mean() <= 0.12 and ood_flags(mi(noise), threshold).mean() >= 0.5


# The stage in runs the suite already trains (tests/conftest.py registry_runs: no run of its own).


def read_sets(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_ravdess_baseline_report_holds_the_conformal_section(registry_runs):
    folder = registry_runs["recipes/RAVDESS/hparams/baseline.yaml"]["folder"]
    report = json.loads((folder / "test_report.json").read_text())
    conformal = report["conformal"]
    assert {"alpha", "method", "coverage", "mean_set_size", "coverage_per_class", "singleton_share"} <= set(conformal)
    assert conformal["alpha"] == 0.1 and conformal["method"] == "aps"
    rows = read_sets(folder / "test_prediction_sets.csv")
    assert len(rows) == report["n_predicted"] == conformal["n"]
    inside = [r["true"] in r["set"].split("|") for r in rows]
    assert conformal["coverage"] == pytest.approx(sum(inside) / len(rows), abs=1e-6)
    assert conformal["mean_set_size"] == pytest.approx(np.mean([int(r["set_size"]) for r in rows]), abs=1e-6)
    assert all(int(r["set_size"]) == len([s for s in r["set"].split("|") if s]) for r in rows)
    calibration = report["calibration"]
    assert calibration["fitted_on"] == "valid" and calibration["temperature"] > 0
    assert calibration["nll_after"] is not None and "aurc" in report["risk_coverage"]
    assert "## Calibration and prediction sets" in (folder / "test_report.md").read_text()
    for name in ("test_reliability.png", "test_risk_coverage.png", "calibration.json"):
        assert (folder / name).is_file(), name
    # calibration.json alone (temperature, quantile) turns the run's probabilities into the saved sets
    saved = json.loads((folder / "calibration.json").read_text())
    entry = saved["entries"]["run"]
    assert saved["default"] == "run" and entry["probabilities"] == "model" and saved["checkpoint"].startswith("CKPT")
    predictions = pd.read_csv(folder / "test_predictions.csv", keep_default_na=False)
    assert predictions["id"].tolist() == [r["id"] for r in rows]
    raw = predictions[[f"p_{c}" for c in saved["labels"]]].to_numpy()
    probs = softmax(log_probabilities(raw), entry["temperature"])
    fit = {"method": saved["method"], "quantile": entry["quantile"], "randomized": saved["randomized"]}
    again = conformal_sets(probs, fit)
    qhat = math.inf if entry["quantile"] is None else entry["quantile"]
    borderline = np.abs(score_matrix(probs, saved["method"]) - qhat).min(axis=1) < 1e-4  # the CSV holds 6 decimals
    labels = np.array(saved["labels"])
    for row, members, p, near in zip(rows, again, probs, borderline):
        order = np.argsort(-p, kind="stable")
        assert near or row["set"].split("|") == [str(c) for c in labels[order][members[order]]] or row["set"] == ""
    assert borderline.mean() < 0.2
    # the run's valid report is untouched by the stage (it is the calibration set)
    assert "conformal" not in json.loads((folder / "valid_report.json").read_text())


def test_knn_and_bayes_runs_carry_ood_thresholds_that_flag_white_noise(registry_runs):
    """supcon (kNN datastore): k-th neighbour distance; bayes (Bayesian head): mutual information."""
    from speechbrain_ext.nn.bayesian import BayesianLinear
    from speechbrain_ext.nn.knn import KNNInterpolator
    from speechbrain_ext.training.post_training import mc_probabilities
    from speechbrain_ext.utils.hyperparams import plain_values

    generator = torch.Generator().manual_seed(0)
    supcon = registry_runs["recipes/RAVDESS/hparams/supcon.yaml"]["folder"]
    saved = json.loads((supcon / "calibration.json").read_text())
    assert saved["default"] == "knn" and set(saved["entries"]) == {"run", "knn"}
    knn = saved["ood"]["knn_distance"]
    assert knn["false_alarm"] == 0.05 and knn["k"] == json.loads((supcon / "knn_summary.json").read_text())["k"]
    for report_folder in (supcon, supcon / "knn"):
        report = json.loads((report_folder / "test_report.json").read_text())
        assert {"conformal", "calibration", "ood"} <= set(report)
        rows = read_sets(report_folder / "test_prediction_sets.csv")
        assert report["ood"]["knn_distance"]["flag_rate"] == pytest.approx(
            np.mean([int(r["ood_knn_distance"]) for r in rows]), abs=1e-6
        )
    knn_predictions = pd.read_csv(supcon / "knn" / "test_predictions.csv", keep_default_na=False).set_index("id")
    rows = read_sets(supcon / "knn" / "test_prediction_sets.csv")  # the kNN-interpolated probabilities were calibrated
    assert [r["predicted"] for r in rows] == knn_predictions.loc[[r["id"] for r in rows], "predicted"].tolist()
    test = torch.load(supcon / "embeddings" / "test.pt", weights_only=False)["embeddings"]
    noise = test.mean(0) + test.std(0) * torch.randn(
        test.shape, generator=generator
    )  # the test rows' per-dimension moments
    store = KNNInterpolator.from_state_dict(torch.load(supcon / "knn_datastore.pt", weights_only=False))

    def rate(x):
        return ood_flags(store.neighbours(x, knn["k"])[0][:, -1].numpy(), knn["threshold"]).mean()

    assert rate(noise) > rate(test) + 0.3 and rate(test) <= 0.3

    bayes = registry_runs["recipes/RAVDESS/hparams/bayes.yaml"]["folder"]
    saved = json.loads((bayes / "calibration.json").read_text())
    report = json.loads((bayes / "test_report.json").read_text())
    assert saved["entries"]["run"]["probabilities"] == "bayes" and "knn" not in saved["entries"]
    assert report["calibration"]["ece_before"] == pytest.approx(report["expected_calibration_error"], abs=1e-6)
    mi = saved["ood"]["mutual_information"]
    state = torch.load(next((bayes / "save" / "bayes").glob("CKPT+*")) / "model.ckpt", map_location="cpu")
    head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    layer = BayesianLinear(head["weight_mu"].shape[1], head["weight_mu"].shape[0], bias=False)
    layer.load_state_dict(head)
    test = torch.load(bayes / "embeddings" / "test.pt", weights_only=False)["embeddings"]
    seed = int(plain_values(bayes / "hyperparams.yaml")["seed"])

    def flags(x):
        return ood_flags(
            mc_probabilities(layer, x, mi["mc_samples"], seed).mutual_information.numpy(), mi["threshold"]
        ).mean()

    # MI of a last-layer Bayesian head grows with the input's norm: noise 3x the test rows' spread is flagged
    noise = test.mean(0) + 3 * test.std(0) * torch.randn(test.shape, generator=generator)
    assert flags(test) == pytest.approx(report["ood"]["mutual_information"]["flag_rate"], abs=1e-6)
    assert flags(noise) > flags(test) + 0.3


def test_fold_tables_carry_coverage_and_set_size(tmp_path):
    from speechbrain_ext.training.folds import collect_results, results_markdown

    runs = []
    for fold, (coverage, size) in enumerate([(0.9, 2.5), (0.94, 3.0)], 1):
        folder = tmp_path / f"fold_{fold}"
        folder.mkdir()
        report = {"n": 10, "UAR": 0.5, "WA": 0.6, "summary_metrics": ["UAR", "WA"]}
        report["conformal"] = {"coverage": coverage, "mean_set_size": size}
        (folder / "test_report.json").write_text(json.dumps(report))
        runs.append({"fold": fold, "seed": 1, "folder": folder})
    frame, split = collect_results(runs)
    assert split == "test" and frame["coverage"].tolist() == [0.9, 0.94] and frame["set_size"].tolist() == [2.5, 3.0]
    assert "| coverage % | set_size |" in results_markdown(frame, "x") and "92.00 ±" in results_markdown(frame, "x")
    (runs[1]["folder"] / "test_report.json").write_text(
        json.dumps({"n": 10, "UAR": 0.5, "WA": 0.6, "summary_metrics": ["UAR", "WA"]})
    )
    assert "coverage" not in collect_results(runs)[0].columns  # a run without the stage: no conformal columns


CALIBRATION_KEYS = {
    "calibrate": True,
    "conformal_alpha": 0.1,
    "conformal_method": "aps",
    "conformal_mondrian": False,
    "ood_false_alarm": 0.05,
}


def test_every_classification_yaml_ends_with_the_calibration_stage():
    """The same keys in every classification YAML, the stage last in post_training; none in the regression ones."""
    from ruamel.yaml import YAML

    from tests.conftest import REPO, ROWS

    for row in ROWS:
        values = YAML(typ="rt").load((REPO / row["hparams"]).read_text())
        if "post_training" not in values or "ClassificationTask" not in values["task"].tag.value:  # FLEA, regression
            assert "calibrate" not in values, row["hparams"]
            continue
        assert {k: values.get(k) for k in CALIBRATION_KEYS} == CALIBRATION_KEYS, row["hparams"]
        stages = (REPO / row["hparams"]).read_text().split("\npost_training: [")[1].split("]")[0]
        assert stages.endswith("!ref <calibration_stage>"), row["hparams"]
        assert values["calibration_stage"].tag.value.endswith("calibration_stage.CalibrationStage")


def test_every_classification_registry_run_is_calibrated(registry_runs):
    """Each classification row wrote calibration.json and the test report's sections; a masked test split has sets, no coverage."""
    from tests.conftest import REPO, TRAIN_ROWS

    for row in TRAIN_ROWS:
        run = registry_runs[row["hparams"]]
        if run["proc"].returncode != 0:
            continue  # test_registry_recipe_trains_and_reports says why
        saved = run["folder"] / "calibration.json"
        classification = "ClassificationTask" in (REPO / row["hparams"]).read_text()
        assert saved.is_file() == classification, row["hparams"]
        if not saved.is_file():
            continue
        report = json.loads((run["folder"] / "test_report.json").read_text())
        entry = json.loads(saved.read_text())["entries"]["run"]
        assert report["conformal"]["quantile"] == entry["quantile"] and report["calibration"]["fitted_on"] == "valid"
        rows = read_sets(run["folder"] / "test_prediction_sets.csv")
        assert len(rows) == report["n_predicted"], row["hparams"]
        if report["n"] == 0:  # HealthCall30's masked test partition
            assert report["conformal"]["coverage"] is None and report["calibration"]["ece_after"] is None
            assert report["calibration"]["valid_ece_after"] is not None
        sizes = [int(r["set_size"]) for r in rows]
        assert report["conformal"]["mean_set_size"] == pytest.approx(np.mean(sizes), abs=1e-6), row["hparams"]
