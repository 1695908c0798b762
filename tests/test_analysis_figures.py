"""``analysis figures``: bootstrap intervals, normalised confusion and length buckets against independent references; t-SNE speed and the real encoder path; CLI; fold-runner hook."""

import argparse
import json
import logging
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from speechbrain_ext.analysis import figures
from speechbrain_ext.analysis.__main__ import build_parser
from speechbrain_ext.analysis.pooled_metrics import CONFIDENCE_BINS
from speechbrain_ext.analysis.tsne import tsne_points
from speechbrain_ext.training.folds import run_folds

LABELS = ["ang", "hap", "neu", "sad"]
PNGS = ["per_class_recall.png", "confusion_normalised.png", "confidence_by_correctness.png", "uar_by_length.png"]


def write_run(folder, rows, labels=LABELS):
    """A minimal classification run: hyperparams.yaml, test_predictions.csv and a manifest with durations (no audio)."""
    folder.mkdir(parents=True)
    manifest = {
        r["id"]: {"wav": f"{{data_root}}/{r['id']}.wav", "duration": r["duration"], "speaker": "s", "emo": r["true"]}
        for r in rows
    }
    (folder / "test.json").write_text(json.dumps(manifest))
    (folder / "hyperparams.yaml").write_text(f"data_folder: {folder}\ntest_annotation: {folder / 'test.json'}\n")
    lines = ["id,true,predicted," + ",".join(f"p_{lab}" for lab in labels)]
    lines += [f"{r['id']},{r['true']},{r['predicted']}," + ",".join(f"{p:.6f}" for p in r["probs"]) for r in rows]
    (folder / "test_predictions.csv").write_text("\n".join(lines) + "\n")


def make_rows(fold, n, rng):
    """Predictions of one fold: right ~60 % of the time; 'sad' rare (some resamples miss it); durations 0.5-6 s."""
    truth = rng.choice(len(LABELS), size=n, p=[0.35, 0.3, 0.3, 0.05])
    rows = []
    for k, t in enumerate(truth):
        probs = rng.dirichlet(np.ones(len(LABELS)))
        if rng.random() < 0.6:
            probs[t] += 2.0
        probs /= probs.sum()
        rows.append(
            {
                "id": f"f{fold}_u{k:03d}",
                "true": LABELS[t],
                "predicted": LABELS[int(probs.argmax())],
                "probs": probs,
                "duration": round(float(rng.uniform(0.5, 6.0)), 3),
            }
        )
    return rows


@pytest.fixture
def two_folds(tmp_path):
    """A results folder of two hand-made fold runs, and their rows in pooling order (fold_1, then fold_2; file order)."""
    rng = np.random.default_rng(11)
    root = tmp_path / "results"
    pooled = []
    for fold, n in ((1, 45), (2, 38)):
        rows = make_rows(fold, n, rng)
        write_run(root / f"fold_{fold}", rows)
        pooled += rows
    # an unlabelled row (a masked utterance) is predicted but never scored
    with open(root / "fold_2" / "test_predictions.csv", "a") as handle:
        handle.write("f2_masked,,ang,0.7,0.1,0.1,0.1\n")
    return root, pooled


def naive_bootstrap(truth, pred, n_classes, n_boot, seed):
    """The definition, one resample at a time: the same index matrix as metrics._resample_indices, plain counting."""
    n = len(truth)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    recalls = [[] for _ in range(n_classes)]
    uars, was = [], []
    for row in idx:
        hits, support = [0] * n_classes, [0] * n_classes
        for i in row:
            support[truth[i]] += 1
            hits[truth[i]] += truth[i] == pred[i]
        per_class = [hits[c] / support[c] for c in range(n_classes) if support[c]]
        for c in range(n_classes):
            if support[c]:
                recalls[c].append(hits[c] / support[c])
        uars.append(sum(per_class) / len(per_class))
        was.append(sum(hits) / n)

    def interval(values):
        return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))

    return [interval(r) for r in recalls], interval(uars), interval(was)


def test_per_class_intervals_equal_a_naive_bootstrap(two_folds, tmp_path):
    root, pooled = two_folds
    result = figures.write_figures(root, out=tmp_path / "fig", tsne=False, n_boot=1000, seed=7)
    truth = [LABELS.index(r["true"]) for r in pooled]
    pred = [LABELS.index(r["predicted"]) for r in pooled]
    per_class, uar_ci, wa_ci = naive_bootstrap(truth, pred, len(LABELS), 1000, 7)

    table = pd.read_csv(tmp_path / "fig" / "per_class_recall.csv")
    assert table["label"].tolist() == LABELS
    for c in range(len(LABELS)):
        support = sum(t == c for t in truth)
        hits = sum(t == p == c for t, p in zip(truth, pred))
        row = table.iloc[c]
        assert row["n"] == support
        assert row["recall"] == pytest.approx(hits / support, abs=1e-6)
        assert (row["low"], row["high"]) == pytest.approx(per_class[c], abs=6e-5)  # the library rounds to 4 decimals
    assert result["pooled_UAR_CI95"] == pytest.approx(list(uar_ci), abs=6e-5)
    assert result["pooled_WA_CI95"] == pytest.approx(list(wa_ci), abs=6e-5)
    assert result["n"] == len(pooled) and result["runs"] == [str(root / "fold_1"), str(root / "fold_2")]
    # one score over both folds' rows, named so it cannot pass for run_folds's UAR (the mean of the per-fold UARs)
    assert result["pooled_UAR"] == pytest.approx(balanced_accuracy_score(truth, pred), abs=6e-5)
    assert result["pooled_WA"] == pytest.approx(accuracy_score(truth, pred), abs=6e-5)
    per_fold = [
        balanced_accuracy_score(*zip(*[(t, p) for r, t, p in zip(pooled, truth, pred) if r["id"].startswith(f"f{k}_")]))
        for k in (1, 2)
    ]
    assert abs(result["pooled_UAR"] - np.mean(per_fold)) > 1e-3
    assert "UAR" not in result and "WA" not in result
    # the rare class is missing from some resamples: its interval is only over those that have it
    assert sum(t == 3 for t in truth) < 8
    saved = json.loads((tmp_path / "fig" / "figures.json").read_text())
    assert saved["per_class_recall"]["sad"]["low"] == pytest.approx(per_class[3][0], abs=6e-5)
    for name in PNGS:
        assert (tmp_path / "fig" / name).stat().st_size > 1000


def test_confusion_and_length_buckets_equal_sklearn(two_folds, tmp_path):
    root, pooled = two_folds
    truth = np.array([r["true"] for r in pooled])
    pred = np.array([r["predicted"] for r in pooled])
    durations = np.array([r["duration"] for r in pooled])

    result = figures.write_figures(root, out=tmp_path / "median", tsne=False, n_boot=200)
    norm = pd.read_csv(tmp_path / "median" / "confusion_normalised.csv").set_index("true \\ predicted")
    expected = sk_confusion_matrix(truth, pred, labels=LABELS, normalize="true")
    np.testing.assert_allclose(norm.loc[LABELS, LABELS].to_numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(result["confusion_counts"], sk_confusion_matrix(truth, pred, labels=LABELS))

    median = np.median(durations)
    for edges, out, masks in (
        (None, tmp_path / "median", [durations <= median, durations > median]),
        ([1.5, 3.0], tmp_path / "edges", [durations <= 1.5, (durations > 1.5) & (durations <= 3.0), durations > 3.0]),
    ):
        if edges is not None:
            figures.write_figures(root, out=out, tsne=False, n_boot=200, length_edges=edges)
        buckets = pd.read_csv(out / "uar_by_length.csv")
        assert len(buckets) == len(masks)
        for (_, row), mask in zip(buckets.iterrows(), masks):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a bucket can lack a class the model predicted
                assert row["UAR"] == pytest.approx(balanced_accuracy_score(truth[mask], pred[mask]), abs=1e-6)
            assert row["WA"] == pytest.approx(accuracy_score(truth[mask], pred[mask]), abs=1e-6)
            assert row["n"] == mask.sum()
            assert row["UAR_low"] <= row["UAR"] + 1e-4 and row["UAR"] <= row["UAR_high"] + 1e-4
    assert buckets["bucket"].tolist()[0] == "≤ 1.5 s"
    assert result["uar_by_length"][0]["bucket"] == "short" and result["uar_by_length"][0]["max_s"] == pytest.approx(
        median
    )


def test_confidence_is_max_posterior_or_the_mc_confidence_of_a_bayesian_run(two_folds, tmp_path):
    root, pooled = two_folds
    correct = np.array([r["true"] == r["predicted"] for r in pooled])
    top = np.array([r["probs"].max() for r in pooled])
    edges = np.linspace(0, 1, CONFIDENCE_BINS + 1)
    plain = figures.write_figures(root, out=tmp_path / "plain", tsne=False, n_boot=50)["confidence"]
    assert plain["source"] == "max posterior"
    assert plain["correct"]["counts"] == np.histogram(np.round(top[correct], 6), bins=edges)[0].tolist()
    assert plain["wrong"]["n"] == (~correct).sum()

    mc = np.random.default_rng(3).uniform(0.2, 0.9, len(pooled))
    for fold in (1, 2):
        ids = [r["id"] for r in pooled if r["id"].startswith(f"f{fold}_")]
        frame = pd.DataFrame(
            {"id": ids[::-1], "confidence": [c for r, c in zip(pooled, mc) if r["id"] in ids][::-1], "entropy": 0.5}
        )
        frame.to_csv(root / f"fold_{fold}" / "test_uncertainty.csv", index=False)
    bayes = figures.write_figures(root, out=tmp_path / "bayes", tsne=False, n_boot=50)["confidence"]
    assert bayes["source"] == "MC confidence"
    assert bayes["wrong"]["counts"] == np.histogram(mc[~correct], bins=edges)[0].tolist()
    assert bayes["correct"]["mean"] == pytest.approx(mc[correct].mean(), abs=1e-6)


def test_a_regression_run_is_left_alone(tmp_path, caplog):
    run = tmp_path / "hume"
    run.mkdir()
    (run / "hyperparams.yaml").write_text("x: 1\n")
    (run / "test_predictions.csv").write_text("id,true_Anger,pred_Anger\na,0.1,0.2\n")
    with caplog.at_level(logging.INFO, logger="speechbrain_ext.analysis.figures"):
        result = figures.write_figures(run)
    assert "skipped" in result and not (run / "figures").exists()
    assert "classification runs" in caplog.text


def test_tsne_of_2000_points_takes_under_a_minute():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (8, 64))
    cluster = np.repeat(np.arange(8), 250)
    x = centres[cluster] + rng.normal(0, 1, (2000, 64))
    start = time.perf_counter()
    points = tsne_points(x, seed=0)
    seconds = time.perf_counter() - start
    print(f"\nt-SNE of 2000 x 64: {seconds:.1f} s")
    assert points.shape == (2000, 2) and np.isfinite(points).all()
    assert seconds < 60
    # the clusters stay apart: each point's nearest neighbour is in its own cluster
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (cluster[d.argmin(axis=1)] == cluster).mean() > 0.95


def test_tsne_of_a_trained_run_through_its_encoder(trained_ravdess, tmp_path):
    folder = trained_ravdess["folder"]
    out = tmp_path / "figures"
    result = figures.write_figures(folder, out=out, tsne=True, n_boot=200, progress=False)
    predictions = pd.read_csv(folder / "test_predictions.csv", dtype=str, keep_default_na=False)
    table = pd.read_csv(out / "tsne.csv", dtype={"id": str})
    assert sorted(table["id"]) == sorted(predictions["id"]) and len(table) == len(predictions)
    assert list(table.columns) == ["id", "x", "y", "label", "fold"]
    assert np.isfinite(table[["x", "y"]].to_numpy()).all()
    assert table.set_index("id").loc[predictions["id"], "label"].tolist() == predictions["true"].tolist()
    assert result["tsne"]["n"] == len(predictions)
    assert (out / "embeddings_cache").is_dir()
    for name in [*PNGS, "tsne.png"]:
        assert (out / name).stat().st_size > 1000


def test_command_line(two_folds, tmp_path, capsys):
    root, pooled = two_folds
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["figures", "--help"])
    assert stop.value.code == 0
    help_text = capsys.readouterr().out
    assert "--no-tsne" in help_text and "--length_edges" in help_text and "RUN" in help_text
    assert "figures RUN: per-class recall" in build_parser().format_help()

    parser = argparse.ArgumentParser()
    figures.add_arguments(parser)
    args = parser.parse_args(
        [str(root), "--no-tsne", "--n_boot", "100", "--seed", "3", "--length_edges", "2,4", "--noprogressbar"]
    )
    figures.run(args)
    out = root / "figures"
    saved = json.loads((out / "figures.json").read_text())
    assert saved["n_boot"] == 100 and saved["seed"] == 3 and saved["n"] == len(pooled)
    assert len(pd.read_csv(out / "uar_by_length.csv")) == 3
    assert sorted(saved["files"]) == sorted(p.name for p in out.iterdir())
    assert not (out / "tsne.csv").exists()


FAKE_TRAIN = """
import json, pathlib, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
out = pathlib.Path(args["output_folder"])
out.mkdir(parents=True, exist_ok=True)
fold = int(args["fold"])
rows = [(f"f{fold}_{k}", ["neu", "sad"][k % 2], ["neu", "sad"][(k // 3) % 2], 1.0 + k) for k in range(8)]
(out / "test.json").write_text(json.dumps({i: {"wav": f"{i}.wav", "duration": d} for i, _, _, d in rows}))
(out / "hyperparams.yaml").write_text(f"data_folder: {out}\\ntest_annotation: {out / 'test.json'}\\n")
(out / "test_predictions.csv").write_text("id,true,predicted,p_neu,p_sad\\n" + "".join(f"{i},{t},{p},{0.8 if p == 'neu' else 0.2},{0.2 if p == 'neu' else 0.8}\\n" for i, t, p, _ in rows))
hits = sum(t == p for _, t, p, _ in rows)
(out / "test_report.json").write_text(json.dumps({"n": 8, "UAR": hits / 8, "WA": hits / 8, "summary_metrics": ["UAR", "WA"]}))
"""


def test_the_fold_runner_writes_figures_without_tsne_and_survives_their_failure(tmp_path, caplog):
    script, yaml = tmp_path / "train.py", tmp_path / "seg.yaml"
    script.write_text(textwrap.dedent(FAKE_TRAIN))
    yaml.write_text("seed: 1\n")
    results = tmp_path / "results"
    run_folds(script, yaml, [1, 2], [1], results, runs_below_results=True, figures=figures.fold_figures)
    saved = json.loads((results / "figures" / "figures.json").read_text())
    assert saved["n"] == 16 and "tsne" not in saved and len(saved["runs"]) == 2
    assert (
        "pooled_UAR" in saved and "UAR" not in saved
    )  # results.md holds the per-fold mean, figures.json the pooled score
    assert (results / "figures" / "per_class_recall.png").is_file() and not (results / "figures" / "tsne.csv").exists()

    # a broken run folder: the table is still written, the figures' failure only logged
    (results / "fold_2" / "seed_1" / "test_predictions.csv").write_text(
        "id,true,predicted,p_neu,p_sad\nx,angry,neu,0.5,0.5\n"
    )
    (results / "results.md").unlink()
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.training.folds"):
        run_folds(script, yaml, [1, 2], [1], results, runs_below_results=True, figures=figures.fold_figures)
    assert (results / "results.md").is_file()
    assert "figures of" in caplog.text and "not written" in caplog.text
