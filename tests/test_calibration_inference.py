"""Calibrated inference (issue 26, point 4): exported models carry the run's calibration and give its sets.

No training of its own: the registry's RAVDESS baseline (the ``run`` entry)
and supcon (the ``knn`` entry) runs are exported, moved, and asked for sets.
"""

import csv
import json
import math
import shutil

import numpy as np
import pytest

from speechbrain_ext.evaluation.conformal import score_matrix
from speechbrain_ext.serving.classify import main as classify_main
from speechbrain_ext.serving.export.export import export_model
from speechbrain_ext.serving.inference import EmotionClassifier

N_FILES = 24  # test files classified per run (of 60): enough rows for every check, a few seconds each


def test_classify_help_shows_prediction_set_and_abstain(capsys):
    with pytest.raises(SystemExit):
        classify_main(["--help"])
    text = capsys.readouterr().out
    assert "--prediction-set" in text and "--abstain ALPHA" in text and "--alpha ALPHA" in text
    with pytest.raises(SystemExit):  # exclusive, as the issue says
        classify_main(["--model", "m", "a.wav", "--prediction-set", "--abstain", "0.1"])


def exported_moved(run_folder, tmp_path, **options):
    """The run exported, then moved to another folder (nothing may point back to the export path), and loaded."""
    folder = export_model(run_folder / "hyperparams.yaml", tmp_path / "export" / "model", **options)
    moved = tmp_path / "elsewhere" / "model"
    moved.parent.mkdir(parents=True)
    shutil.move(str(folder), moved)
    shutil.rmtree(tmp_path / "export")
    return moved, EmotionClassifier.from_hparams(source=str(moved), savedir=str(tmp_path / "cache"))


def saved_sets(folder, corpus, n=N_FILES):
    """The first ``n`` rows of a report folder's test_prediction_sets.csv, with their audio files."""
    with open(folder / "test_prediction_sets.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:n]
    annotation = json.loads(
        (folder.parent if folder.name == "knn" else folder).joinpath("prep", "test.json").read_text()
    )
    paths = [annotation[r["id"]]["wav"].replace("{data_root}", str(corpus)) for r in rows]
    return rows, paths


def members(row):
    return row["set"].split("|") if row["set"] else []


def check_quantile_from_the_definition(calibration, entry):
    """qhat at any alpha = the ceil((n + 1)(1 - alpha))-th smallest stored valid score, by a loop."""
    scores = calibration.document["entries"][entry]["scores"]
    assert scores == sorted(scores) and len(scores) == calibration.document["entries"][entry]["n_calibration"]
    n = len(scores)
    for alpha in (0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1 / (n + 1) / 2):
        rank, level = 0, (n + 1) * (1 - alpha)
        while rank < level - 1e-9:  # ceil((n + 1)(1 - alpha)) by counting
            rank += 1
        ordered = list(scores)
        expected = math.inf
        if rank <= n:
            for _ in range(rank - 1):
                ordered.remove(min(ordered))
            expected = min(ordered)
        assert calibration.quantile(alpha, entry) == expected, alpha
    stored = calibration.document["entries"][entry]["quantile"]
    at_run = calibration.quantile(None, entry)
    assert (stored is None and at_run == math.inf) or at_run == pytest.approx(stored, abs=1e-8)


def check_sets_and_abstention(model, rows, paths, entry, exact_rows=None):
    """classify_files' sets equal the CSV's (but for scores within 1e-4 of qhat); abstain is None iff not a singleton."""
    calibration = model.calibration
    answers = model.classify_files(paths, prediction_set=True, num_workers=0)
    qhat = calibration.quantile(None, entry)
    agree = 0
    for k, (answer, row) in enumerate(zip(answers, rows)):
        out_prob, _, index, text_lab, sets = answer
        probs = out_prob.exp().double().numpy()
        assert sets[0].labels == [calibration.labels[c] for c in np.argsort(-probs[0], kind="stable")][
            : len(sets[0].labels)
        ] or (calibration.document.get("mondrian"))
        near = np.abs(score_matrix(probs, calibration.method) - qhat).min() < 1e-4
        if exact_rows is None or exact_rows[k]:
            assert sets[0].labels == members(row) or near, (row, sets[0])
            agree += sets[0].labels == members(row)
        assert text_lab[0] == row["predicted"] or (exact_rows is not None and not exact_rows[k])
    for alpha in (calibration.alpha, 0.5):
        for path in paths[:6]:
            *_, text_lab, sets = model.classify_file(path, abstain=alpha)
            _, _, _, _, plain = model.classify_file(path, prediction_set=True, alpha=alpha)
            assert sets[0].labels == plain[0].labels and sets[0].alpha == alpha
            assert (text_lab[0] is None) == (len(sets[0].labels) != 1)
            assert text_lab[0] is None or text_lab[0] == sets[0].labels[0]
    return agree


def test_exported_moved_baseline_gives_the_runs_sets(registry_runs, registry_corpora, tmp_path):
    run = registry_runs["recipes/RAVDESS/hparams/baseline.yaml"]["folder"]
    folder, model = exported_moved(run, tmp_path)
    saved = json.loads((run / "calibration.json").read_text())
    assert model.calibration.entry == saved["default"] == "run"
    assert model.calibration.temperature() == saved["entries"]["run"]["temperature"]
    rows, paths = saved_sets(run, registry_corpora["RAVDESS"])
    agree = check_sets_and_abstention(model, rows, paths, "run")
    assert agree >= 0.8 * len(rows)
    check_quantile_from_the_definition(model.calibration, "run")
    # the raw answer is the run's own when no set is asked (temperature only with sets or calibrated=True)
    raw = model.classify_file(paths[0])
    assert len(raw) == 4 and raw[3][0] == rows[0]["predicted"]
    scaled = model.classify_file(paths[0], calibrated=True)[0].exp()[0].max()
    assert float(scaled) == pytest.approx(float(rows[0]["confidence"]), abs=1e-5)
    timeline = model.classify_file(paths[0], segments=True, abstain=0.5)
    assert timeline and all((s.label is None) == (len(s.prediction_set) != 1) for s in timeline)
    report = json.loads((run / "test_report.json").read_text())["conformal"]
    card = (folder / "README.md").read_text()
    assert "## Calibration, prediction sets and abstention" in card
    assert f"test coverage {100 * report['coverage']:.1f} %" in card and f"{report['mean_set_size']:.2f}" in card


def test_exported_supcon_answers_with_the_knn_entry(registry_runs, registry_corpora, tmp_path):
    """The kNN datastore travels: the ``knn`` entry's sets and the kNN-distance OOD flag; without it, the ``run`` entry."""
    run = registry_runs["recipes/RAVDESS/hparams/supcon.yaml"]["folder"]
    folder, model = exported_moved(run, tmp_path)
    assert (folder / "knn.ckpt").is_file() and model.calibration.entry == "knn"
    rows, paths = saved_sets(run / "knn", registry_corpora["RAVDESS"])
    # supcon evaluates in bf16 on 2 s crops (--precision=bf16, max_audio_seconds): the exported fp32 model on whole
    # files reproduces the run's kNN probabilities on some rows only; the sets must agree on those
    with open(run / "knn" / "test_predictions.csv", newline="") as handle:
        saved = {r["id"]: r for r in csv.DictReader(handle)}
    raw = model.classify_files(paths, num_workers=0)
    labels = model.calibration.labels
    exact = [
        np.abs(a[0].exp()[0].numpy() - np.array([float(saved[r["id"]][f"p_{c}"]) for c in labels])).max() < 1e-4
        for a, r in zip(raw, rows)
    ]
    assert sum(exact) >= 0.25 * len(rows)
    agree = check_sets_and_abstention(model, rows, paths, "knn", exact_rows=exact)
    assert agree >= 0.8 * sum(exact)
    check_quantile_from_the_definition(model.calibration, "knn")
    *_, sets = model.classify_file(paths[0], prediction_set=True)
    assert set(sets[0].ood) == {"knn_distance"}
    _, alone = exported_moved(run, tmp_path / "alone", knn=False)
    assert alone.calibration.entry == "run"
