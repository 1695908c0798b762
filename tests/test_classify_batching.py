"""Many files at once: ``classify_files`` / ``predict_files`` and ``classify --batch-size/--device`` against one file at a time.

Batching is exact for every encoder (see :mod:`speechbrain_ext.serving.inference`):
a layer-norm encoder given the attention mask shares padded batches of any
lengths; a group-norm one shares batches only among files of equal length.
"""

import json

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.data.audio import AudioLoadError, load_audio
from speechbrain_ext.serving import classify
from speechbrain_ext.serving.export.export import export_model
from speechbrain_ext.serving.inference import EmotionClassifier, EmotionRegressor
from tests.model_folders import TEST_IDS, random_model_folder, wav_of

# (seconds, sample rate, channels): five 16 kHz lengths, two of them equal (1.37 s at 16 and 48 kHz)
CLIPS = [
    (1.0, 16000, 1),
    (1.37, 48000, 2),
    (2.2, 16000, 1),
    (0.8, 48000, 1),
    (1.37, 16000, 1),
    (3.1, 16000, 2),
    (0.55, 44100, 1),
]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """Noisy tones of several lengths, rates and channel counts (each different)."""
    folder, rng, paths = tmp_path_factory.mktemp("clips"), np.random.default_rng(0), []
    for k, (seconds, rate, channels) in enumerate(CLIPS):
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (120 + 60 * k) * t) * (1 + np.sin(2 * np.pi * (1 + k) * t))
        signal = tone[:, None] + 0.05 * rng.standard_normal((len(t), channels))
        soundfile.write(folder / f"clip{k}.wav", signal.astype("float32"), rate)
        paths.append(str(folder / f"clip{k}.wav"))
    return paths


def _spy(monkeypatch, model) -> list[list[int]]:
    """Record the real lengths (samples) of the files in each forward pass."""
    calls, forward = [], model.forward_batch

    def spy(wavs, wav_lens=None, transcripts=None):
        lens = torch.ones(len(wavs)) if wav_lens is None else wav_lens
        calls.append([int(round(float(rel) * wavs.shape[1])) for rel in lens])
        return forward(wavs, wav_lens, transcripts)

    monkeypatch.setattr(model, "forward_batch", spy)
    return calls


@pytest.fixture(scope="module")
def layer_norm_models(tiny_models, tmp_path_factory):
    """Exported folders (random tiny weights, no training) over the layer-norm, attention-mask tiny wav2vec2: recipe -> folder."""
    return {
        name: random_model_folder(recipe, tiny_models, tmp_path_factory.mktemp(name) / "m", ssl="wav2vec2_large")[0]
        for name, recipe in (
            ("baseline", "recipes/RAVDESS/hparams/baseline.yaml"),
            ("seg", "recipes/RAVDESS/hparams/seg.yaml"),
        )
    }


def test_help_lists_device_and_batch_size(capsys):
    with pytest.raises(SystemExit) as done:
        classify.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--device", "--batch-size", "--num-workers", "--benchmark"):
        assert option in out
    assert "exact" in out and "group-norm" in out and "equal length" in out


@pytest.mark.parametrize("recipe", ["baseline", "seg"])
def test_layer_norm_batches_of_any_lengths_equal_one_by_one(
    layer_norm_models, audio_files, recipe, tmp_path, monkeypatch
):
    model = EmotionClassifier.from_hparams(
        source=str(layer_norm_models[recipe]), savedir=str(tmp_path / "c"), run_opts={"device": "cpu"}
    )
    assert model.device == "cpu" and model.batch_exact  # layer-norm front end, attention mask passed
    lengths = [len(load_audio(p)) for p in audio_files]
    assert len(set(lengths)) >= 5
    calls = _spy(monkeypatch, model)
    batched = model.classify_files(audio_files, batch_size=4, num_workers=2)
    assert sorted(n for call in calls for n in call) == sorted(lengths)  # every file once
    assert max(len(call) for call in calls) == 4 and all(
        len(set(call)) > 1 for call in calls
    )  # padded batches of several lengths
    assert calls[0][0] == max(lengths)  # longest first
    monkeypatch.undo()
    for path, got in zip(audio_files, batched):
        want = model.classify_file(path)
        assert len(got) == 4 and [x.shape for x in got[:3]] == [x.shape for x in want[:3]]
        torch.testing.assert_close(got[0].exp(), want[0].exp(), atol=1e-4, rtol=0)
        assert got[3] == want[3] and got[2].tolist() == want[2].tolist()


def test_exactness_is_read_from_the_configuration(layer_norm_models, tiny_models, tmp_path, monkeypatch):
    model = EmotionClassifier.from_hparams(
        source=str(layer_norm_models["baseline"]), savedir=str(tmp_path / "c"), run_opts={"device": "cpu"}
    )
    encoder = model.model.encoder
    assert model.batch_exact
    monkeypatch.setattr(encoder, "use_attention_mask", False)
    assert not model.batch_exact  # padding reaches the transformer
    monkeypatch.undo()
    monkeypatch.setattr(encoder.ssl_model.model.config, "feat_extract_norm", "group")
    assert not model.batch_exact  # group norm over time sees the padding
    monkeypatch.undo()
    folder, _ = random_model_folder(
        "recipes/RAVDESS/hparams/baseline.yaml", tiny_models, tmp_path / "base", ssl="wav2vec2"
    )
    base = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "b"), run_opts={"device": "cpu"})
    assert not base.batch_exact


def test_regressor_predict_files(tiny_models, audio_files, tmp_path):
    folder, _ = random_model_folder(
        "recipes/Hume-Prosody/hparams/audio.yaml", tiny_models, tmp_path / "reg", ssl="wav2vec2_large"
    )
    model = EmotionRegressor.from_hparams(source=str(folder), savedir=str(tmp_path / "c"), run_opts={"device": "cpu"})
    assert model.batch_exact
    for path, got in zip(audio_files, model.predict_files(audio_files, batch_size=8, num_workers=0)):
        want = model.predict_file(path)
        assert list(got) == list(want) and list(got.values()) == pytest.approx(list(want.values()), abs=1e-4)


@pytest.fixture(scope="module")
def group_norm_classifier(trained_ravdess, tmp_path_factory):
    """The suite's trained RAVDESS run (tiny group-norm wav2vec2, no attention mask), exported."""
    folder = export_model(
        trained_ravdess["folder"] / "hyperparams.yaml", tmp_path_factory.mktemp("export_gn") / "ravdess_model"
    )
    return EmotionClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path_factory.mktemp("cache_gn")), run_opts={"device": "cpu"}
    )


def test_group_norm_batches_only_equal_lengths(group_norm_classifier, synthetic_ravdess, tmp_path, monkeypatch):
    model = group_norm_classifier
    assert not model.batch_exact
    paths = [wav_of(synthetic_ravdess, utt) for utt in TEST_IDS]
    # two more files with the length of the first and second ones, different content
    rng = np.random.default_rng(1)
    for k, source in enumerate(paths[:2]):
        data, rate = soundfile.read(source, dtype="float32")
        twin = data[::-1] if k == 0 else 0.5 * data + 0.01 * rng.standard_normal(len(data)).astype("float32")
        soundfile.write(tmp_path / f"twin{k}.wav", twin, rate, subtype="FLOAT")
        paths.append(str(tmp_path / f"twin{k}.wav"))
    lengths = [len(load_audio(p)) for p in paths]
    assert lengths[3] == lengths[0] and lengths[4] == lengths[1] and len(set(lengths)) == 3
    calls = _spy(monkeypatch, model)
    batched = model.classify_files(paths, batch_size=4, num_workers=2)
    assert sorted(n for call in calls for n in call) == sorted(lengths)
    assert all(len(set(call)) == 1 for call in calls)  # nothing padded
    assert sorted(len(call) for call in calls) == [1, 2, 2]  # the equal-length pairs share a batch
    monkeypatch.undo()
    for path, got in zip(paths, batched):
        want = model.classify_file(path)
        torch.testing.assert_close(got[0].exp(), want[0].exp(), atol=1e-5, rtol=0)
        assert got[3] == want[3]
    # why not pad: a padded batch of different lengths changes a group-norm model's answers
    signals = [load_audio(p) for p in paths[:3]]
    padded = model.classify_batch(
        torch.nn.utils.rnn.pad_sequence(signals, batch_first=True),
        torch.tensor([len(s) / max(lengths) for s in signals]),
    )[0]
    one_by_one = torch.cat([model.classify_file(p)[0] for p in paths[:3]])
    difference = float((padded.exp() - one_by_one.exp()).abs().max())
    print(f"\ngroup-norm model, padded batch vs one by one: largest probability difference {difference:.3g}")
    assert difference > 1e-5


def test_command_line_reports_unreadable_files_and_classifies_the_rest(
    layer_norm_models, audio_files, tmp_path, capsys, monkeypatch
):
    missing, broken, undecodable = (
        str(tmp_path / "missing.wav"),
        tmp_path / "broken.wav",
        str(tmp_path / "undecodable.wav"),
    )
    broken.write_bytes(b"RIFF1234WAVEjunk")
    soundfile.write(undecodable, np.zeros(16000, dtype="float32"), 16000)
    files = [audio_files[0], missing, *audio_files[1:4], str(broken), audio_files[4], undecodable, *audio_files[5:]]
    model = str(layer_norm_models["baseline"])

    real_load = load_audio

    def load(path, *args, **kwargs):  # a header that reads but samples that do not: fails inside a reader process
        if str(path) == undecodable:
            raise AudioLoadError(f"{path}: cannot be decoded as audio (test)")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(
        "speechbrain_ext.serving.model_interface.load_audio", load
    )  # the one-by-one path reads through it too
    runs = {}
    for batch_size in ("1", "4"):
        status = classify.main(
            [
                "--model",
                model,
                "--savedir",
                str(tmp_path / "c"),
                "--device",
                "cpu",
                "--batch-size",
                batch_size,
                "--num-workers",
                "2",
                "--json",
                *files,
            ]
        )
        assert status == 1
        runs[batch_size] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    single, batched = runs["1"], runs["4"]
    assert [r["file"] for r in batched] == files
    for name in (missing, str(broken), undecodable):
        result = batched[files.index(name)]
        assert name in result["error"] and result == single[files.index(name)]
    good = [k for k, f in enumerate(files) if f in audio_files]
    for k in good:
        assert batched[k]["label"] == single[k]["label"]
        assert list(batched[k]["probabilities"].values()) == pytest.approx(
            list(single[k]["probabilities"].values()), abs=1e-4
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_gpu_device_matches_cpu(layer_norm_models, audio_files, tmp_path):
    cpu = classify.load_model(str(layer_norm_models["baseline"]), str(tmp_path / "a"), "cpu")
    gpu = classify.load_model(str(layer_norm_models["baseline"]), str(tmp_path / "b"), "cuda:0")
    assert str(next(gpu.model.parameters()).device) == "cuda:0"
    for a, b in zip(cpu.classify_files(audio_files, batch_size=4), gpu.classify_files(audio_files, batch_size=4)):
        torch.testing.assert_close(a[0].exp(), b[0].exp().cpu(), atol=1e-4, rtol=0)
