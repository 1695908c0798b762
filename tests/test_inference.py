"""Inference interfaces, export, model card, publishing and the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.data.audio import AudioLoadError, load_audio
from speechbrain_ext.evaluation.reports import metrics_table
from speechbrain_ext.serving.export.export import export_model
from speechbrain_ext.serving.export.publish import publish
from speechbrain_ext.serving.inference import EmotionClassifier, EmotionRegressor
from tests.model_folders import REPO, TEST_IDS, random_model_folder, wav_of


@pytest.fixture(scope="module")
def exported(trained_ravdess, tmp_path_factory):
    return export_model(
        trained_ravdess["folder"] / "hyperparams.yaml", tmp_path_factory.mktemp("export") / "ravdess_model"
    )


@pytest.fixture(scope="module")
def classifier(exported, tmp_path_factory):
    return EmotionClassifier.from_hparams(source=str(exported), savedir=str(tmp_path_factory.mktemp("cache")))


def test_export_folder_and_model_card(exported, trained_ravdess):
    names = {p.name for p in exported.iterdir()}
    assert {
        "hyperparams.yaml",
        "model.ckpt",
        "label_encoder.txt",
        "label_encoder.ckpt",
        "custom_interface.py",
        "README.md",
    } <= names
    card = (exported / "README.md").read_text()
    report = json.loads((trained_ravdess["folder"] / "test_report.json").read_text())
    assert card.startswith("---\nlibrary_name: speechbrain\n")
    assert metrics_table(report) in card  # the table is the report's, never typed by hand
    assert '"merge_calm": true' in card and "RAVDESS" in card
    assert "EU AI Act" in card and "foreign_class" in card
    hparams = (exported / "hyperparams.yaml").read_text()
    assert "data_folder" not in hparams and "opt_class" not in hparams


def test_fresh_process_both_loaders_match_evaluation(exported, trained_ravdess, synthetic_ravdess, tmp_path):
    script = f"""
import json
from speechbrain.inference.interfaces import foreign_class
from speechbrain_ext.serving.inference import EmotionClassifier
ours = EmotionClassifier.from_hparams(source={str(exported)!r}, savedir={str(tmp_path / "a")!r})
theirs = foreign_class(source={str(exported)!r}, pymodule_file="custom_interface.py", classname="EmotionClassifier", savedir={str(tmp_path / "b")!r})
out = {{}}
for name, model in (("ours", ours), ("foreign_class", theirs)):
    for utt in {TEST_IDS!r}:
        out_prob, score, index, lab = model.classify_file({str(synthetic_ravdess)!r} + f"/Actor_{{utt[-2:]}}/{{utt}}.wav")
        out[name + utt] = {{"probs": out_prob.exp()[0].tolist(), "label": lab[0]}}
print("RESULT" + json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    rows = {
        r.split(",")[0]: r.split(",")
        for r in (trained_ravdess["folder"] / "test_predictions.csv").read_text().splitlines()[1:]
    }
    for loader in ("ours", "foreign_class"):
        for utt in TEST_IDS:
            expected = torch.tensor([float(v) for v in rows[utt][3:]])
            torch.testing.assert_close(torch.tensor(result[loader + utt]["probs"]), expected, atol=1e-5, rtol=0)
            assert result[loader + utt]["label"] == rows[utt][2]


def test_48k_stereo_equals_16k_mono(classifier, synthetic_ravdess, tmp_path):
    mono16 = load_audio(wav_of(synthetic_ravdess, TEST_IDS[0])).numpy()
    soundfile.write(tmp_path / "mono16.wav", mono16, 16000, subtype="FLOAT")
    # an independent resampler (sox) makes the 48 kHz stereo copy
    subprocess.run(
        [
            "sox",
            "-D",
            str(tmp_path / "mono16.wav"),
            "-b",
            "32",
            "-e",
            "floating-point",
            "-c",
            "2",
            str(tmp_path / "stereo48.wav"),
            "rate",
            "-v",
            "48000",
        ],
        check=True,
    )
    assert soundfile.info(tmp_path / "stereo48.wav").channels == 2
    converted = load_audio(tmp_path / "stereo48.wav").numpy()
    assert len(converted) == len(mono16)
    # two resamplers (sox up, torchaudio down) agree to within 3 % RMS (they differ only near 8 kHz)
    assert np.sqrt(np.mean((converted - mono16) ** 2) / np.mean(mono16**2)) < 0.03
    # the file interface classifies exactly that converted signal
    from_file = classifier.classify_file(tmp_path / "stereo48.wav")[0]
    from_signal = classifier.classify_batch(torch.tensor(converted).unsqueeze(0))[0]
    torch.testing.assert_close(from_file, from_signal, atol=1e-5, rtol=0)
    # and its posteriors stay close to the original's (a trained model amplifies the small difference a little)
    original = classifier.classify_file(tmp_path / "mono16.wav")[0]
    assert (from_file.exp() - original.exp()).abs().max() < 0.15


@pytest.mark.parametrize(
    "content,problem", [(b"", "empty file"), (b"RIFF1234WAVEjunk", "cannot be decoded"), (None, "no audio samples")]
)
def test_bad_files_are_named(classifier, tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    if content is None:
        soundfile.write(path, np.zeros(0), 16000)
    else:
        path.write_bytes(content)
    for call in (lambda: classifier.classify_file(path), lambda: classifier.classify_file(path, segments=True)):
        with pytest.raises(AudioLoadError, match=problem) as err:
            call()
        assert str(path) in str(err.value)


def test_timeline(tiny_models, synthetic_ravdess, tmp_path):
    """An utterance model's timeline: 2 s windows every second, each pooled and classified, the tail covered."""
    folder, _ = random_model_folder("recipes/RAVDESS/hparams/baseline.yaml", tiny_models, tmp_path / "linear")
    classifier = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    parts = [load_audio(wav_of(synthetic_ravdess, utt)) for utt in TEST_IDS]
    signal = torch.cat(parts).numpy()
    soundfile.write(tmp_path / "long.wav", signal, 16000, subtype="FLOAT")
    timeline = classifier.classify_file(tmp_path / "long.wav", segments=True)
    duration = len(signal) / 16000
    assert timeline[0].start == 0.0 and timeline[0].end == 2.0
    assert [s.start for s in timeline[:-1]] == [float(i) for i in range(len(timeline) - 1)]
    assert timeline[-1].end == pytest.approx(duration, abs=0.03) and timeline[-1].end - timeline[
        -1
    ].start == pytest.approx(2.0, abs=1e-6)  # the tail is covered
    for seg in timeline:
        assert seg.label in classifier.labels
        assert sum(seg.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert seg.label == max(seg.probabilities, key=seg.probabilities.get)
    # the first window is the head applied to the mean of the first 100 frames
    with torch.no_grad():
        frames, _ = classifier.model.encoder(torch.tensor(signal).unsqueeze(0), torch.ones(1))
        expected = torch.softmax(classifier.model.head(frames[:, :100].mean(1)), dim=-1)[0]
    assert list(timeline[0].probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)


def _peak_rss_mb(exported, path, tmp_path):
    script = f"""
import resource
from speechbrain_ext.serving.inference import EmotionClassifier
m = EmotionClassifier.from_hparams(source={str(exported)!r}, savedir={str(tmp_path / "c")!r})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
m.classify_file({str(path)!r})
print("PEAK", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return float(proc.stdout.split("PEAK", 1)[1])


def test_ten_minute_file_in_bounded_memory(exported, synthetic_ravdess, tmp_path):
    piece = load_audio(wav_of(synthetic_ravdess, TEST_IDS[0])).numpy()
    minute = np.tile(piece, int(np.ceil(60 * 16000 / len(piece))))[: 60 * 16000]
    with soundfile.SoundFile(tmp_path / "ten_minutes.wav", "w", 16000, 1) as handle:
        for _ in range(10):
            handle.write(minute)
    soundfile.write(tmp_path / "thirty_seconds.wav", minute[: 30 * 16000], 16000)
    short = _peak_rss_mb(exported, tmp_path / "thirty_seconds.wav", tmp_path)
    long = _peak_rss_mb(exported, tmp_path / "ten_minutes.wav", tmp_path)
    # One 30 s chunk at a time: ten minutes need no more memory than one chunk
    # (unchunked, the tiny encoder's first conv layer alone would take ~1.2 GB).
    assert long - short < 100, f"10-minute file: +{long:.0f} MB peak over a 30 s file (+{short:.0f} MB)"


def test_bayesian_family_uncertainty(tiny_models, synthetic_ravdess, tmp_path):
    folder, _ = random_model_folder("recipes/RAVDESS/hparams/bayes.yaml", tiny_models, tmp_path / "bayes")
    model = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    assert model.is_bayesian
    path = wav_of(synthetic_ravdess, TEST_IDS[1])
    deterministic = model.classify_file(path)[0].exp()
    u = model.uncertainty_file(path, n_samples=300)
    assert u["mean_probs"].shape == (1, 3) and u["std_probs"].shape == (1, 3)
    assert u["mean_probs"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert u["entropy"].item() >= u["mutual_information"].item() > 0
    assert u["std_probs"].max() > 0
    # a collapsed posterior makes the MC average the mean-weights answer
    with torch.no_grad():
        model.model.head.weight_log_sigma.fill_(-30.0)
    assert model.model.head.bias_mu is None  # the recipes' heads have no bias
    torch.testing.assert_close(model.classify_file(path, n_samples=50)[0].exp(), deterministic, atol=1e-5, rtol=0)
    assert model.uncertainty_file(path, n_samples=50)["mutual_information"].item() < 1e-6


def test_regressor_family(tiny_models, synthetic_ravdess, tmp_path):
    folder, _ = random_model_folder("recipes/Hume-Prosody/hparams/audio.yaml", tiny_models, tmp_path / "reg")
    model = EmotionRegressor.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    path = wav_of(synthetic_ravdess, TEST_IDS[2])
    result = model.predict_file(path)
    assert list(result) == [
        "Anger",
        "Boredom",
        "Calmness",
        "Concentration",
        "Determination",
        "Excitement",
        "Interest",
        "Sadness",
        "Tiredness",
    ]
    assert all(0.0 <= v <= 1.0 for v in result.values())
    batch = model.predict_batch(load_audio(path).unsqueeze(0))[0]
    assert list(result.values()) == pytest.approx(batch.tolist(), abs=1e-5)


@pytest.mark.parametrize("recipe", ["recipes/RAVDESS/hparams/seg.yaml", "recipes/IEMOCAP/hparams/attention.yaml"])
def test_segment_and_attention_families(tiny_models, synthetic_ravdess, tmp_path, recipe):
    folder, _ = random_model_folder(recipe, tiny_models, tmp_path / "m")
    model = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    path = wav_of(synthetic_ravdess, TEST_IDS[0])
    from_file = model.classify_file(path)
    from_batch = model.classify_batch(load_audio(path).unsqueeze(0))
    torch.testing.assert_close(from_file[0], from_batch[0], atol=1e-5, rtol=0)
    assert from_file[3][0] in ("angry", "neutral", "sad")


def test_command_line(exported, classifier, synthetic_ravdess, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    files = [wav_of(synthetic_ravdess, utt) for utt in TEST_IDS[:2]]
    cmd = [
        sys.executable,
        "-m",
        "speechbrain_ext.serving.classify",
        "--model",
        str(exported),
        "--savedir",
        str(tmp_path / "c"),
        *files,
        str(bad),
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stderr[-2000:]  # one file failed, the others were classified
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["file"] for r in results] == [*files, str(bad)]
    for r in results[:2]:
        assert set(r["probabilities"]) == set(classifier.labels)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert str(bad) in results[2]["error"]
    proc = subprocess.run([*cmd[:7], files[0], "--segments"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and " s  " in proc.stdout


def test_publish_dry_run_and_checks(exported, capsys, tmp_path):
    files = publish(exported, "org/ravdess-tiny", dry_run=True)
    assert {"hyperparams.yaml", "model.ckpt", "README.md", "custom_interface.py"} <= set(files)
    out = capsys.readouterr().out
    assert "[dry run] would upload" in out and "https://huggingface.co/org/ravdess-tiny" in out
    with pytest.raises(FileNotFoundError, match="not an exported model folder"):
        publish(tmp_path, "org/x", dry_run=True)
    with pytest.raises(ValueError, match="org/name"):
        publish(exported, "no-slash", dry_run=True)


def test_padded_batch_equals_single_files_and_training_evaluation(tiny_models, synthetic_ravdess, tmp_path):
    """Layer-norm encoder with an attention mask: a padded batch of different lengths gives each file's own answer."""
    folder, hparams = random_model_folder(
        "recipes/RAVDESS/hparams/baseline.yaml", tiny_models, tmp_path / "ln", ssl="wav2vec2_large"
    )
    model = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    paths = [wav_of(synthetic_ravdess, utt) for utt in TEST_IDS]
    signals = [load_audio(p) for p in paths]
    assert len({len(x) for x in signals}) == 3
    wavs = torch.nn.utils.rnn.pad_sequence(signals, batch_first=True)
    lens = torch.tensor([len(x) / wavs.shape[1] for x in signals])
    batched = model.classify_batch(wavs, lens)[0]
    for i, path in enumerate(paths):
        torch.testing.assert_close(batched[i], model.classify_file(path)[0][0], atol=1e-4, rtol=0)
    trained = hparams["model"].eval()  # the module the Brain evaluates, with the same weights
    trained.load_state_dict(torch.load(folder / "model.ckpt"))
    with torch.no_grad():
        torch.testing.assert_close(trained(wavs, lens).decision, batched, atol=1e-5, rtol=0)


def test_exported_model_stands_alone(exported, trained_ravdess, synthetic_ravdess, tiny_models, tmp_path):
    """Moved elsewhere, base model folder gone, hub offline: both loaders reproduce the evaluation probabilities."""
    import os
    import shutil

    moved = shutil.copytree(exported, tmp_path / "elsewhere" / "model")
    for path in moved.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".md", ".py", ".txt"):
            text = path.read_text()
            for local in (str(trained_ravdess["folder"]), tiny_models["wav2vec2"], str(REPO)):
                assert local not in text, f"{path.name} names {local}"
    base = Path(tiny_models["wav2vec2"])
    hidden = base.with_name(base.name + ".hidden")
    base.rename(hidden)
    try:
        script = f"""
import json
from speechbrain.inference.interfaces import foreign_class
from speechbrain_ext.serving.inference import EmotionClassifier
ours = EmotionClassifier.from_hparams(source={str(moved)!r}, savedir={str(tmp_path / "a")!r})
theirs = foreign_class(source={str(moved)!r}, pymodule_file="custom_interface.py", classname="EmotionClassifier", savedir={str(tmp_path / "b")!r})
out = {{name: [m.classify_file({str(synthetic_ravdess)!r} + f"/Actor_{{u[-2:]}}/{{u}}.wav")[0].exp()[0].tolist() for u in {TEST_IDS!r}] for name, m in (("ours", ours), ("theirs", theirs))}}
print("RESULT" + json.dumps(out))
"""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    finally:
        hidden.rename(base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    rows = {
        r.split(",")[0]: [float(v) for v in r.split(",")[3:]]
        for r in (trained_ravdess["folder"] / "test_predictions.csv").read_text().splitlines()[1:]
    }
    for name in ("ours", "theirs"):
        for utt, probs in zip(TEST_IDS, result[name]):
            assert probs == pytest.approx(rows[utt], abs=1e-5)
    card = (moved / "README.md").read_text()
    assert "base_model:" not in card  # trained from a local folder: no hub id to name


def test_publish_rejects_models_that_need_the_training_machine(exported, tmp_path, capsys):
    import shutil

    files = publish(exported, "org/x", dry_run=True)
    assert "model.ckpt" in files and "encoder configuration (in hyperparams.yaml): wav2vec2" in capsys.readouterr().out
    for name, edit, message in (
        ("local", lambda t: t.replace("source:", "source: /home/me/wav2vec2  #", 1), "local path"),
        ("noconfig", lambda t: t.replace("    config:", "    unused_config:", 1), "no configuration"),
    ):
        folder = shutil.copytree(exported, tmp_path / name)
        (folder / "hyperparams.yaml").write_text(edit((folder / "hyperparams.yaml").read_text()))
        with pytest.raises(ValueError, match=message):
            publish(folder, "org/x", dry_run=True)
