"""Every hparams file of every emotion recipe, from the registry (recipes/registry.csv).

Each listed YAML trains for one epoch on its synthetic corpus with a tiny
wav2vec2 and must write the outputs the registry names; a YAML missing from
the registry, or a key no code or YAML reference reads, fails the suite.
"""

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import CODE_FILES, RECIPE_OVERRIDES, REPO, ROWS, SYNTHETIC, TRAIN_ROWS, run_recipe, top_level_keys


def unused_keys(yaml_file: Path, code: str) -> list[str]:
    """Keys that no ``<ref>`` in the YAML and no ``hparams["key"]``/``.key`` in the code reads."""
    text = yaml_file.read_text(encoding="utf-8")
    unused = []
    for key in top_level_keys(yaml_file):
        referenced = re.search(rf"<{re.escape(key)}[>.\[]", text)
        read = re.search(rf"[\"']{re.escape(key)}[\"']|\.{re.escape(key)}\b", code)
        if not referenced and not read:
            unused.append(key)
    return unused


def test_registry_lists_every_hparams_file():
    listed = [row["hparams"] for row in ROWS]
    on_disk = sorted(str(p.relative_to(REPO)) for p in REPO.glob("recipes/*/hparams/*.yaml"))
    assert len(listed) == len(set(listed)), "a YAML is listed twice"
    assert sorted(listed) == on_disk, (
        f"unlisted: {sorted(set(on_disk) - set(listed))}, missing: {sorted(set(listed) - set(on_disk))}"
    )
    for row in ROWS:
        for column in ("train_script", "readme"):
            assert (REPO / row[column]).is_file(), row[column]
        assert row["outputs"].split(), row["hparams"]
        assert row["corpus"] in SYNTHETIC


def test_every_hparams_key_is_used():
    code = "\n".join(p.read_text(encoding="utf-8") for p in CODE_FILES)
    problems = {row["hparams"]: unused_keys(REPO / row["hparams"], code) for row in ROWS}
    assert {k: v for k, v in problems.items() if v} == {}


def test_unused_key_check_catches_a_stray_key(tmp_path):
    code = "\n".join(p.read_text(encoding="utf-8") for p in CODE_FILES)
    yaml_file = tmp_path / "x.yaml"
    yaml_file.write_text((REPO / ROWS[0]["hparams"]).read_text() + "\nsegment_sise: 80  # a typo nobody reads\n")
    assert unused_keys(yaml_file, code) == ["segment_sise"]


@pytest.mark.parametrize("row", TRAIN_ROWS, ids=[f"{r['corpus']}-{Path(r['hparams']).stem}" for r in TRAIN_ROWS])
def test_registry_recipe_trains_and_reports(row, registry_runs):
    run = registry_runs[row["hparams"]]
    proc = run["proc"]
    assert proc.returncode == 0, f"{row['hparams']} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    folder = run["folder"]
    missing = [name for name in row["outputs"].split() if not (folder / name).exists()]
    assert not missing, f"{row['hparams']} did not write {missing}"
    epochs = [line for line in (folder / "train_log.txt").read_text().splitlines() if line.startswith("epoch:")]
    assert len(epochs) == int(re.search(r"--number_of_epochs=(\d+)", row["debug_overrides"]).group(1))
    for split in ("valid", "test"):
        manifest = json.loads((folder / "prep" / f"{split}.json").read_text())
        labelled = [k for k, e in manifest.items() if e.get("labelled", True)]  # a ComParE test partition is masked
        report = json.loads((folder / f"{split}_report.json").read_text())
        assert report["n_predicted"] == len(manifest) > 0 and report["n"] == len(labelled)
        with (folder / f"{split}_predictions.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert [r["id"] for r in rows] == sorted(
            manifest, key=lambda k: manifest[k]["duration"]
        )  # every row predicted, shortest first
        values = np.array([[float(v) for k, v in r.items() if k.startswith(("p_", "pred_"))] for r in rows])
        if row["corpus"] == "Hume-Prosody" or "pred_arousal" in rows[0]:  # regression: Hume's 9, MSP-Podcast's 3
            assert values.shape[1] in (9, 3) and ((values >= 0) & (values <= 1)).all()
        else:
            np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)
            assert report["n"] == 0 or sum(map(sum, report["confusion_matrix"])) == report["n"]


def test_fesc_uses_the_chosen_hidden_layer(registry_runs):
    """FESC rows run with --ssl_layer=1: the encoder keeps one transformer layer (layer 23 of 24 by default)."""
    folder = registry_runs["recipes/FESC/hparams/baseline.yaml"]["folder"]
    ckpt = next((folder / "save").glob("CKPT+*")) / "model.ckpt"
    keys = torch.load(ckpt, map_location="cpu").keys()
    assert any(".encoder.layers.0." in k for k in keys) and not any(".encoder.layers.1." in k for k in keys)


def test_supcon_augmenter_appends_augmented_copies(tmp_path, tiny_models):
    """The supcon YAML's augmenter returns the batch followed by an augmented copy of it, from locally generated noise and RIRs."""
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ext.data.augment import generate_noise_and_rirs

    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        "ssl_hub": tiny_models["wav2vec2"],
        "encoder_dim": 64,
    }
    with open(REPO / "recipes/RAVDESS/hparams/supcon.yaml") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    generate_noise_and_rirs(hparams["augmentation_folder"], hparams["sample_rate"])
    rows = (Path(hparams["augmentation_folder"]) / "noise.csv").read_text().splitlines()
    assert rows[0] == "ID,duration,wav,wav_format,wav_opts" and all(Path(r.split(",")[2]).is_file() for r in rows[1:])
    torch.manual_seed(0)
    wavs = torch.randn(3, 16000) * 0.1
    out, lens = hparams["wav_augment"](wavs, torch.ones(3))
    assert out.shape[0] == 6 and lens.shape == (6,)
    torch.testing.assert_close(out[:3], wavs)  # the originals first
    assert all((out[3 + i] - wavs[i]).abs().max() > 1e-3 for i in range(3))  # then changed copies
    assert hparams["wav_augment"].replicate_labels(torch.tensor([0, 1, 2])).tolist() == [0, 1, 2, 0, 1, 2]


def test_supcon_tunes_knn_on_valid(registry_runs):
    folder = registry_runs["recipes/RAVDESS/hparams/supcon.yaml"]["folder"]
    summary = json.loads((folder / "knn_summary.json").read_text())
    assert summary["tuned_on"] == "valid" and 1 <= summary["k"] <= 8
    valid = json.loads((folder / "knn" / "valid_report.json").read_text())  # valid as scored while tuning
    assert valid["UAR"] == pytest.approx(summary["valid"]["UAR_knn"], abs=5e-5)


def test_fuse_finished_runs(registry_runs, tmp_path):
    """Late fusion of three finished RAVDESS runs (a kNN folder among them), weights tuned on valid."""
    import pandas as pd

    folders = [
        registry_runs[f"recipes/RAVDESS/hparams/{m}.yaml"]["folder"] for m in ("baseline", "attention", "supcon")
    ]
    folders[2] = folders[2] / "knn"
    out = tmp_path / "fused"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_ext.methods.fusion_cli",
            *map(str, folders),
            "--out",
            str(out),
            "--tune-on",
            "valid",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = json.loads((out / "fusion.json").read_text())["weights"]
    singles = [json.loads((f / "valid_report.json").read_text())["UAR"] for f in folders]
    assert (
        json.loads((out / "valid_report.json").read_text())["UAR"] >= max(singles) - 1e-4
    )  # each run alone is a grid point
    fused = pd.read_csv(out / "test_predictions.csv").set_index("id")
    cols = [c for c in fused.columns if c.startswith("p_")]
    inputs = [
        pd.read_csv(f / "test_predictions.csv").set_index("id").loc[fused.index, cols].to_numpy() for f in folders
    ]
    np.testing.assert_allclose(
        fused[cols].to_numpy(), sum(w * p for w, p in zip(weights, inputs)) / sum(weights), atol=2e-6
    )


def test_bayes_report_mc_means_and_confidence(registry_runs):
    folder = registry_runs["recipes/RAVDESS/hparams/bayes.yaml"]["folder"]
    report = json.loads((folder / "test_report.json").read_text())
    assert report["mc_samples"] >= 100
    linear = json.loads((folder / "linear_stage" / "test_report.json").read_text())
    assert report["linear_stage"] == {"UAR": linear["UAR"], "WA": linear["WA"]}
    # Figure 1 statistic, recomputed from the predictions file with numpy
    lines = (folder / "test_predictions.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [r.split(",") for r in lines[1:]]
    labels = [h[2:] for h in header[3:]]
    probs = np.array([[float(v) for v in r[3:]] for r in rows])
    true = np.array([labels.index(r[1]) for r in rows])
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == true
    stats = report["confidence_by_correctness"]
    assert stats["correct"]["n"] == correct.sum() and stats["wrong"]["n"] == (~correct).sum()
    for name, sel in (("correct", correct), ("wrong", ~correct)):
        if sel.any():
            assert stats[name]["mean"] == pytest.approx(confidence[sel].mean(), abs=1e-5)
    # the stored probabilities are MC means of the saved Bayesian layer: a naive loop over 2000 weight draws agrees
    state = torch.load(next((folder / "save" / "bayes").glob("CKPT+*")) / "model.ckpt", map_location="cpu")
    mu, log_sigma = state["head.weight_mu"], state["head.weight_log_sigma"]
    assert not any(k.startswith("head.bias_mu") for k in state)
    test = torch.load(folder / "embeddings" / "test.pt", weights_only=False)
    assert test["ids"] == [r[0] for r in rows]
    torch.manual_seed(123)
    loop = torch.zeros(len(rows), len(labels))
    for _ in range(2000):
        weight = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        loop += torch.softmax(test["embeddings"] @ weight.T, dim=-1) / 2000
    assert np.abs(loop.numpy() - probs).max() < 0.03
    uncertainty = (folder / "test_uncertainty.csv").read_text().splitlines()
    assert (
        uncertainty[0] == "id,true,predicted,confidence,entropy,mutual_information,correct"
        and len(uncertainty) == len(rows) + 1
    )


def test_bayes_stage_follows_a_newer_stage_one_checkpoint(registry_runs, registry_corpora, tiny_models, tmp_path):
    """A Bayesian head trained on an older stage-one checkpoint is never reused with a newer one."""
    row = next(r for r in ROWS if r["hparams"] == "recipes/RAVDESS/hparams/bayes.yaml")
    folder = tmp_path / "bayes"
    shutil.copytree(registry_runs[row["hparams"]]["folder"], folder)
    first = json.loads((folder / "bayes_training.json").read_text())
    stage_one = next((folder / "save").glob("CKPT+*"))
    newer = stage_one.with_name(stage_one.name + "-newer")  # as if stage one had since selected another checkpoint
    stage_one.rename(newer)
    args = (f"--ssl_hub={tiny_models['wav2vec2']}", *RECIPE_OVERRIDES, *shlex.split(row["debug_overrides"]))
    run_recipe(REPO / row["hparams"], registry_corpora["RAVDESS"], folder, *args)
    second = json.loads((folder / "bayes_training.json").read_text())
    assert first["stage1_checkpoint"] == stage_one.name and second["stage1_checkpoint"] == newer.name
    report = json.loads((folder / "test_report.json").read_text())
    assert report["stage1_checkpoint"] == newer.name
    assert [c.name for c in (folder / "save" / "bayes").glob("CKPT+*")] != [] and len(
        list((folder / "save" / "bayes").glob("CKPT+*"))
    ) == 1


def test_knn_alpha_zero_reproduces_the_model(registry_runs, registry_corpora, tiny_models, tmp_path):
    """Re-running a finished run with --knn_eval and alpha grid [0] skips training and gives the model's own predictions."""
    source = registry_runs["recipes/IEMOCAP/hparams/seg.yaml"]["folder"]
    folder = tmp_path / "seg"
    shutil.copytree(source, folder)
    row = next(r for r in ROWS if r["hparams"] == "recipes/IEMOCAP/hparams/seg.yaml")
    run_recipe(
        REPO / row["hparams"],
        registry_corpora["IEMOCAP"],
        folder,
        f"--ssl_hub={tiny_models['wav2vec2']}",
        *RECIPE_OVERRIDES,
        *shlex.split(row["debug_overrides"]),
        "--knn_eval=True",
        "--knn_alphas=[0.0]",
    )
    assert (folder / "knn" / "test_predictions.csv").read_text() == (folder / "test_predictions.csv").read_text()
    summary = json.loads((folder / "knn_summary.json").read_text())
    assert summary["alpha"] == 0.0 and summary["test"]["with_knn"] == summary["test"]["without_knn"]
    epochs = [line for line in (folder / "train_log.txt").read_text().splitlines() if line.startswith("epoch:")]
    assert len(epochs) == 1  # no training happened in the second run


def test_knn_choice_never_sees_the_test_split(registry_runs, tmp_path):
    """k and alpha depend on train and valid only: scrambling the test split changes nothing in the choice."""
    from speechbrain_ext.data.manifests import SPLITS
    from speechbrain_ext.nn.knn import KNNInterpolator
    from speechbrain_ext.training.knn_stage import knn_evaluate
    from speechbrain_ext.training.tasks import ClassificationTask

    folder = registry_runs["recipes/RAVDESS/hparams/supcon.yaml"]["folder"]  # knn_eval: embeddings cached
    embeddings = {s: torch.load(folder / "embeddings" / f"{s}.pt", weights_only=False) for s in SPLITS}
    task = ClassificationTask("emo", 7, str(folder / "save" / "label_encoder.txt"))
    task.encoder.load(folder / "save" / "label_encoder.txt")
    labels = task.labels
    probs = {s: embeddings[s]["outputs"] for s in SPLITS}
    first = knn_evaluate(embeddings, probs, task, tmp_path / "a", max_k=16)
    generator = torch.Generator().manual_seed(0)
    scrambled = dict(embeddings)
    test = dict(embeddings["test"])
    test["targets"] = test["targets"][torch.randperm(len(test["targets"]), generator=generator)]
    test["embeddings"] = torch.randn(test["embeddings"].shape, generator=generator)
    scrambled["test"] = test
    second = knn_evaluate(
        scrambled,
        {**probs, "test": torch.rand(probs["test"].shape, generator=generator)},
        task,
        tmp_path / "b",
        max_k=16,
    )
    assert (first["k"], first["alpha"], first["valid"]) == (second["k"], second["alpha"], second["valid"])
    # ... and equal the best of an independent search on validation against the training datastore
    tuner = KNNInterpolator(len(labels))
    tuner.add(embeddings["train"]["embeddings"], embeddings["train"]["targets"])
    direct = tuner.tune(
        embeddings["valid"]["embeddings"], embeddings["valid"]["targets"].tolist(), probs["valid"], ks=range(1, 17)
    )
    assert (direct["k"], direct["alpha"]) == (first["k"], first["alpha"])
    assert first["datastore"]["size"] == len(embeddings["train"]["ids"]) + len(embeddings["valid"]["ids"])


def test_triplet_seg_learns_on_held_out_actors(trained_ravdess):
    """segments + triplet (S) on the 12-actor synthetic RAVDESS: held-out actors 23-24, chance 1/7."""
    report = trained_ravdess["report"]
    assert report["n"] == 120 and len(report["labels"]) == 7 and report["set"] == "test"
    assert report["UAR"] >= 0.6, report


def test_run_folds_iemocap_loso(registry_corpora, tiny_models, tmp_path):
    """Five folds (one direction), one table; a second call skips them all; an interrupted fold is resumed, alone."""
    results = tmp_path / "folds"
    cmd = [
        sys.executable,
        "recipes/IEMOCAP/run_folds.py",
        "recipes/IEMOCAP/hparams/baseline.yaml",
        f"--data_folder={registry_corpora['IEMOCAP']}",
        f"--results_folder={results}",
        "--protocol=loso",  # baseline.yaml's own protocol is session
        "--valid_gender=F",
        f"--ssl_hub={tiny_models['wav2vec2']}",
        "--number_of_epochs=1",
        *RECIPE_OVERRIDES,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = list(csv.DictReader((results / "results.csv").open()))
    assert [r["fold"] for r in rows] == ["1", "2", "3", "4", "5", "mean", "std"]
    runs = {k: results / f"fold_{k}" / "valid_F" / "seed_1986" for k in range(1, 6)}
    uars = [json.loads((runs[k] / "test_report.json").read_text())["UAR"] for k in range(1, 6)]
    assert float(rows[5]["UAR"]) == pytest.approx(np.mean(uars), abs=1e-6)
    assert float(rows[6]["UAR"]) == pytest.approx(np.std(uars, ddof=1), abs=1e-6)
    test_speakers = {
        k: {e["speaker"] for e in json.loads((runs[k] / "prep" / "test.json").read_text()).values()}
        for k in range(1, 6)
    }
    assert [sorted(s) for s in test_speakers.values()] == [
        [f"Ses0{k}M"] for k in range(1, 6)
    ]  # valid F: the M speaker is tested
    table = (results / "results.md").read_text()
    assert table.count("\n| ") == 7 and "mean ± std" in table and table.strip() in proc.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 5
    assert (results / "results.md").read_text() == table

    for name in ("run_complete.json", "test_report.json"):  # as if fold 3 had been killed before its test
        (runs[3] / name).unlink()
    resumed = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert resumed.returncode == 0 and resumed.stdout.count("finished earlier, skipped") == 4
    assert "fold 3, valid F, seed 1986 (3/5): resuming" in resumed.stdout
    epochs = [line for line in (runs[3] / "train_log.txt").read_text().splitlines() if line.startswith("epoch:")]
    assert len(epochs) == 1  # resumed from the checkpoint, not trained again
    assert (results / "results.md").read_text() == table


@pytest.mark.parametrize(
    "hparams, overrides, message",
    [
        (
            "recipes/RAVDESS/hparams/baseline.yaml",
            ["--data_folder=/nonexistent/RAVDESS"],
            "data_folder '/nonexistent/RAVDESS' is not a folder",
        ),
        (
            "recipes/RAVDESS/hparams/triplet_seg.yaml",
            ["--triplet_on=segment"],
            "triplet_on must be 'segments' or 'utterance'",
        ),
        (
            "recipes/IEMOCAP/hparams/seg.yaml",
            ["--brain_class=EmotionBrain"],
            "brain_class 'EmotionBrain' is not one of this recipe's Brains",
        ),
        (
            "recipes/RAVDESS/hparams/baseline.yaml",
            ["--numbr_of_epochs=2"],
            "--numbr_of_epochs (did you mean --number_of_epochs?)",
        ),
    ],
)
def test_bad_input_fails_before_any_model_is_built(tmp_path, hparams, overrides, message):
    """Offline, with a hub id that does not exist: the real problem is reported, not a download error."""
    cmd = [
        sys.executable,
        str(REPO / hparams).replace("hparams/" + Path(hparams).name, "train.py"),
        str(REPO / hparams),
    ]
    if not any(o.startswith("--data_folder=") for o in overrides):
        overrides = [f"--data_folder={tmp_path}", *overrides]
    cmd += [f"--output_folder={tmp_path / 'out'}", "--ssl_hub=no-such-org/no-such-model", *overrides]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    )
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr  # one line, the input's problem
    assert "no-such-model" not in proc.stderr  # nothing tried to load the encoder
    assert not (tmp_path / "out" / "prep").exists()  # nor to prepare data


def test_text_run_transcribes_then_fuses_with_audio(registry_runs, tmp_path):
    """text.yaml writes Whisper transcripts, with each clip's detected language, into its manifests, trains on them, and fuses with the audio run."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    from speechbrain_ext.methods.fusion import fuse_runs

    text, audio = (registry_runs[f"recipes/Hume-Prosody/hparams/{m}.yaml"]["folder"] for m in ("text", "audio"))
    for split in ("train", "valid", "test"):
        entries = json.loads((text / "prep" / f"{split}.json").read_text()).values()
        assert all(
            isinstance(e["transcript_whisper"], str) and e["transcript_whisper_options"]["language"] is None
            for e in entries
        )
        assert all(e["transcript_whisper_language"] in LANGUAGES for e in entries)
    reports = fuse_runs([text, audio], tmp_path / "fused", tune_on="valid")
    singles = [json.loads((run / "valid_report.json").read_text())["mean_spearman"] for run in (text, audio)]
    assert reports["valid"]["mean_spearman"] >= max(singles) - 1e-4  # each run alone is a grid point
    assert reports["test"]["n"] == 0 and reports["test"]["n_predicted"] == len(
        json.loads((text / "prep" / "test.json").read_text())
    )


def test_duration_batches_pad_less_and_log_it(registry_runs):
    """attention.yaml's registry run batches by seconds (--max_batch_seconds=12), baseline.yaml's by 8 random files: both log their padding."""

    def padding(method: str) -> float:
        log = (registry_runs[f"recipes/RAVDESS/hparams/{method}.yaml"]["folder"] / "train_log.txt").read_text()
        return float(re.search(r"train padding: ([0-9.e+-]+)", log).group(1))

    assert padding("attention") < padding("baseline")


def test_exported_supcon_model_answers_with_its_tuned_knn(registry_runs, registry_corpora, tmp_path):
    """hub export carries knn_datastore.pt: classify_file returns alpha p_knn + (1 - alpha) p_model with the run's k and alpha."""
    from speechbrain_ext.nn.knn import KNNInterpolator
    from speechbrain_ext.serving.classify import load_model
    from speechbrain_ext.serving.export.cli import main
    from speechbrain_ext.serving.export.export import export_model

    run = registry_runs["recipes/RAVDESS/hparams/supcon.yaml"]["folder"]
    with_knn = load_model(str(export_model(run / "hyperparams.yaml", tmp_path / "with_knn")), str(tmp_path / "a"))
    alone = load_model(str(export_model(run / "hyperparams.yaml", tmp_path / "alone", knn=False)), str(tmp_path / "b"))
    assert (tmp_path / "with_knn" / "knn.ckpt").is_file() and not (tmp_path / "alone" / "knn.ckpt").exists()
    summary = json.loads((run / "knn_summary.json").read_text())
    store = KNNInterpolator.from_state_dict(torch.load(run / "knn_datastore.pt", weights_only=False))
    assert (store.k, store.alpha) == (summary["k"], summary["alpha"])
    wavs = sorted(registry_corpora["RAVDESS"].rglob("*.wav"))[:3]
    for wav in wavs:
        model_probs = alone.classify_file(str(wav))[0].exp()
        embedding = alone.encode_file(str(wav)).reshape(1, -1)
        expected = summary["alpha"] * store.knn_probs(embedding) + (1 - summary["alpha"]) * model_probs
        np.testing.assert_allclose(with_knn.classify_file(str(wav))[0].exp().numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(SystemExit):  # the ONNX graph cannot carry the datastore: refused before anything is written
        main(["export", "--train-hparams", str(run / "hyperparams.yaml"), "--out", str(tmp_path / "onnx"), "--onnx"])
    assert not (tmp_path / "onnx").exists()
