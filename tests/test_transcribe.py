"""Whisper transcripts into manifests: batching and chunking change nothing, runs resume, bad files are named."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext.data import transcribe
from speechbrain_ext.data.audio import AudioLoadError
from speechbrain_ext.data.transcribe import TRANSCRIPT_KEY, transcribe_manifests

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus(tmp_path):
    """Five short files and one 70 s file, in a manifest with {data_root}."""
    rng = np.random.default_rng(0)
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    lengths = {"a": 1.0, "b": 2.5, "c": 0.7, "d": 3.0, "e": 1.8, "long": 70.0}
    manifest = {}
    for utt, seconds in lengths.items():
        sf.write(root / "wav" / f"{utt}.wav", 0.1 * rng.standard_normal(int(seconds * 16000)).astype("float32"), 16000)
        manifest[utt] = {"wav": f"{{data_root}}/wav/{utt}.wav", "duration": seconds}
    path = tmp_path / "prep" / "train.json"
    path.parent.mkdir()
    path.write_text(json.dumps(manifest))
    return root, path


def transcripts(path):
    return {utt: entry.get(TRANSCRIPT_KEY) for utt, entry in json.loads(Path(path).read_text()).items()}


def test_batched_and_chunked_transcripts_equal_files_alone(corpus, tiny_models, tmp_path):
    root, manifest = corpus
    result = transcribe_manifests(
        [manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False
    )
    assert result == {"transcribed": 6, "kept": 0, "skipped": {}}
    batched = transcripts(manifest)
    entry = json.loads(manifest.read_text())["a"]
    assert entry[f"{TRANSCRIPT_KEY}_options"] == {
        "model": tiny_models["whisper"],
        "language": "fr",
        "beam_size": 1,
        "chunk_seconds": 30.0,
    }
    # the 70 s file cut by hand into 30 + 30 + 10 s files, everything transcribed one file at a time
    wav, _ = sf.read(root / "wav" / "long.wav", dtype="float32")
    alone = {}
    for k, piece in enumerate((wav[:480000], wav[480000:960000], wav[960000:])):
        sf.write(root / "wav" / f"piece{k}.wav", piece, 16000)
        alone[f"piece{k}"] = {"wav": f"{{data_root}}/wav/piece{k}.wav", "duration": len(piece) / 16000}
    for utt in "abcde":
        alone[utt] = {"wav": f"{{data_root}}/wav/{utt}.wav"}
    single = tmp_path / "single.json"
    single.write_text(json.dumps(alone))
    transcribe_manifests([single], root, source=tiny_models["whisper"], language="fr", batch_size=1, progress=False)
    one_by_one = transcripts(single)
    assert len({batched[utt] for utt in "abcde"}) == 5  # the random tiny Whisper's transcripts depend on the audio
    assert all(batched[utt] == one_by_one[utt] for utt in "abcde")
    assert batched["long"] == " ".join(
        t for t in (one_by_one["piece0"], one_by_one["piece1"], one_by_one["piece2"]) if t
    )


def test_resumes_and_redoes_on_new_options(corpus, tiny_models, monkeypatch):
    root, manifest = corpus
    calls = []
    real_decode = transcribe.decode

    def dies_in_second_batch(model, searcher, waveforms, languages):
        calls.append(len(waveforms))
        if len(calls) == 3:  # batch 1: long (3 chunks) + d, two decode calls; batch 2 dies
            raise KeyboardInterrupt
        return real_decode(model, searcher, waveforms, languages)

    monkeypatch.setattr(transcribe, "decode", dies_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        transcribe_manifests(
            [manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False
        )
    done = {utt for utt, text in transcripts(manifest).items() if text is not None}
    assert done == {"long", "d"}  # longest first, saved after the first batch
    calls.clear()
    monkeypatch.setattr(transcribe, "decode", lambda *a: (calls.append(len(a[2])), real_decode(*a))[1])
    result = transcribe_manifests(
        [manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False
    )
    assert result["transcribed"] == 4 and result["kept"] == 2 and sum(calls) == 4
    again = transcribe_manifests(
        [manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False
    )
    assert again == {"transcribed": 0, "kept": 6, "skipped": {}}
    calls.clear()
    beam = transcribe_manifests(
        [manifest], root, source=tiny_models["whisper"], language="fr", beam_size=2, batch_size=2, progress=False
    )
    assert beam["transcribed"] == 6 and sum(calls) == 8  # every file redone: 5 short + 3 chunks
    calls.clear()
    english = transcribe_manifests(
        [manifest], root, source=tiny_models["whisper"], language="en", beam_size=2, batch_size=2, progress=False
    )
    assert (
        english["transcribed"] == 6 and sum(calls) == 8
    )  # another language: every file again, the 70 s one in 3 chunks
    assert json.loads(manifest.read_text())["a"][f"{TRANSCRIPT_KEY}_options"]["language"] == "en"
    # a manifest written before languages were recorded: a forced language is filled in, nothing decoded again
    old = {
        utt: {k: v for k, v in entry.items() if k != f"{TRANSCRIPT_KEY}_language"}
        for utt, entry in json.loads(manifest.read_text()).items()
    }
    manifest.write_text(json.dumps(old))
    assert (
        transcribe_manifests(
            [manifest], root, source=tiny_models["whisper"], language="en", beam_size=2, progress=False
        )["kept"]
        == 6
    )
    assert {entry[f"{TRANSCRIPT_KEY}_language"] for entry in json.loads(manifest.read_text()).values()} == {"en"}


def test_imported_transcripts_and_the_transcriber(corpus, tiny_models, tmp_path):
    """Transcripts of a CSV go into the manifest (switching back to Whisper redoes them); the Transcriber module transcribes as the stage does."""
    from speechbrain_ext.data.audio import load_audio
    from speechbrain_ext.data.transcribe import Transcriber, import_transcripts

    root, manifest = corpus
    transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False)
    whisper = transcripts(manifest)
    module = Transcriber(tiny_models["whisper"], language="fr", batch_size=4)
    waves = [load_audio(root / "wav" / f"{utt}.wav") for utt in ("a", "long")]
    assert module.transcribe(waves) == [whisper["a"], whisper["long"]]
    table = tmp_path / "transcripts.csv"
    table.write_text(
        "filename,transcript\n"
        + "".join(f'{utt}.wav,"words of {utt}, said"\n' for utt in ("a", "b", "c", "d", "e", "long"))
    )
    assert import_transcripts([manifest], table) == {"imported": 6, "kept": 0}
    assert transcripts(manifest)["a"] == "words of a, said"
    assert import_transcripts([manifest], table) == {"imported": 0, "kept": 6}
    assert (
        transcribe_manifests(
            [manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False
        )["transcribed"]
        == 6
    )
    table.write_text("filename,transcript\na.wav,only one\n")
    with pytest.raises(ValueError, match="no transcript for 5 entries"):
        import_transcripts([manifest], table)


def test_bad_and_missing_files(corpus, tiny_models, tmp_path):
    root, manifest = corpus
    (root / "wav" / "c.wav").write_bytes(b"not audio")
    with pytest.raises(AudioLoadError, match=r"train.json \[c\]: .*c.wav"):
        transcribe_manifests([manifest], root, source=tiny_models["whisper"], progress=False)
    result = transcribe_manifests([manifest], root, source=tiny_models["whisper"], skip_bad_files=True, progress=False)
    assert list(result["skipped"]) == [str(root / "wav" / "c.wav")] and result["transcribed"] == 5
    (root / "wav" / "d.wav").unlink()
    # a missing file is found before the model is loaded (no such model here)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_ext.data.transcribe",
            str(manifest),
            "--data_folder",
            str(root),
            "--model",
            "no-such/model",
            "--beam_size",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "1 audio files are missing" in proc.stderr and "d.wav" in proc.stderr


# Signals the random tiny Whisper (seed 0) puts in different languages: a file's language decides its prefix.
VOICES = {
    "noise": lambda t, rng: 0.1 * rng.standard_normal(len(t)),
    "low": lambda t, rng: 0.5 * np.sin(2 * np.pi * 100 * t),
    "high": lambda t, rng: 0.5 * np.sin(2 * np.pi * 1000 * t),
}


def voice(kind, seconds, seed=0):
    t = np.arange(int(seconds * 16000)) / 16000
    return VOICES[kind](t, np.random.default_rng(seed)).astype("float32")


def reference_languages(folder, wavs):
    """Whisper's language identification written out on transformers' own model: one decoder step from
    <|startoftranscript|> on each file's 30 s log-mel, argmax over the language tokens of the generation config."""
    import transformers

    model = transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval()
    features = transformers.WhisperFeatureExtractor.from_pretrained(folder)(
        list(wavs), sampling_rate=16000, return_tensors="pt"
    ).input_features
    start = torch.full((len(wavs), 1), model.generation_config.decoder_start_token_id)
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=start).logits[:, -1]
    lang_to_id = model.generation_config.lang_to_id
    masked = torch.full_like(logits, -torch.inf)
    masked[:, list(lang_to_id.values())] = logits[:, list(lang_to_id.values())]
    code = {i: token[2:-2] for token, i in lang_to_id.items()}
    return [code[i] for i in masked.argmax(-1).tolist()]


def test_languages_detected_per_file_and_kept(tiny_models, tmp_path):
    """Without a language each file gets Whisper's detected one (a batch mixes them), written in the manifest and kept on resuming."""
    from speechbrain_ext.data.transcribe import LANGUAGE_KEY

    lengths = {"noise": 2.0, "low": 1.5, "high": 2.5}
    (tmp_path / "wav").mkdir()
    wavs = {utt: voice(utt, seconds) for utt, seconds in lengths.items()}
    for utt, wav in wavs.items():
        sf.write(tmp_path / "wav" / f"{utt}.wav", wav, 16000)
    manifest = tmp_path / "train.json"
    manifest.write_text(
        json.dumps({utt: {"wav": f"{{data_root}}/wav/{utt}.wav", "duration": s} for utt, s in lengths.items()})
    )
    expected = dict(zip(wavs, reference_languages(tiny_models["whisper"], wavs.values())))
    assert len(set(expected.values())) == 3  # one batch holds three languages
    assert (
        transcribe_manifests([manifest], tmp_path, source=tiny_models["whisper"], batch_size=3, progress=False)[
            "transcribed"
        ]
        == 3
    )
    entries = json.loads(manifest.read_text())
    assert {utt: e[LANGUAGE_KEY] for utt, e in entries.items()} == expected
    assert all(e[f"{TRANSCRIPT_KEY}_options"]["language"] is None for e in entries.values())
    again = transcribe_manifests([manifest], tmp_path, source=tiny_models["whisper"], language="auto", progress=False)
    assert again == {"transcribed": 0, "kept": 3, "skipped": {}} and json.loads(manifest.read_text()) == entries


def test_the_prefix_holds_the_forced_or_detected_language(tiny_models, monkeypatch):
    """The first decoder input of every row: <|startoftranscript|>, then the forced language, or the file's detected one
    (on its first chunk, for all its chunks), for every beam."""
    import transformers

    from speechbrain_ext.data.transcribe import Transcriber

    tokenizer = transformers.WhisperTokenizer.from_pretrained(tiny_models["whisper"])
    sot, eot = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|endoftext|>"])
    low, mixed = (
        voice("low", 1.0),
        np.concatenate([voice("high", 1.0), voice("noise", 1.5)]),
    )  # mixed: chunks high | noise | noise
    low_code, first, later = reference_languages(tiny_models["whisper"], [low, mixed[:16000], mixed[16000:32000]])
    assert (
        len({low_code, first, later}) == 3
    )  # two files of two languages; the later chunks alone would be detected otherwise
    fr, low_id, first_id = (tokenizer.convert_tokens_to_ids(f"<|{code}|>") for code in ("fr", low_code, first))
    # forced: one file, one chunk; detected: the first chunks of both files, then the two later chunks of the mixed one (beams of a row in a row)
    cases = {
        ("fr", 1, 1): [[[sot, fr]]],
        (None, 2, 2): [[[sot, low_id]] * 2 + [[sot, first_id]] * 2, [[sot, first_id]] * 4],
    }
    for (language, beams, files), want in cases.items():
        module = Transcriber(
            tiny_models["whisper"], language=language, beam_size=beams, chunk_seconds=1.0, batch_size=4
        )
        prefixes, decoder = [], module.whisper.forward_decoder

        def recording(encoded, tokens, *args, decoder=decoder, prefixes=prefixes, **kwargs):
            logits, attn, cache = decoder(encoded, tokens, *args, **kwargs)
            if "past_key_values" in kwargs:  # a search step (language detection is one step, without a cache)
                if kwargs["past_key_values"] is None:  # the first: the whole prefix
                    prefixes.append(tokens[:, :2].tolist())
                # every search ends as soon as it may (only its prefix matters here); not certain, or the beam searcher's eos threshold blocks it
                logits[:, -1, eot] = logits[:, -1].max(dim=-1).values + 1
            return logits, attn, cache

        monkeypatch.setattr(module.whisper, "forward_decoder", recording)
        module.transcribe([torch.from_numpy(low), torch.from_numpy(mixed)][:files])
        assert prefixes == want, language
