"""Whisper transcripts into manifests: batching and chunking change nothing, runs resume, bad files are named."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechbrain_ext import transcribe
from speechbrain_ext.audio import AudioLoadError
from speechbrain_ext.transcribe import TRANSCRIPT_KEY, transcribe_manifests

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
    result = transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False)
    assert result == {"transcribed": 6, "kept": 0, "skipped": {}}
    batched = transcripts(manifest)
    entry = json.loads(manifest.read_text())["a"]
    assert entry[f"{TRANSCRIPT_KEY}_options"] == {"model": tiny_models["whisper"], "language": "fr", "beam_size": 1, "chunk_seconds": 30.0}
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
    assert batched["long"] == " ".join(t for t in (one_by_one["piece0"], one_by_one["piece1"], one_by_one["piece2"]) if t)


def test_resumes_and_redoes_on_new_options(corpus, tiny_models, monkeypatch):
    root, manifest = corpus
    calls = []
    real_decode = transcribe.decode

    def dies_in_second_batch(model, searcher, waveforms):
        calls.append(len(waveforms))
        if len(calls) == 3:  # batch 1: long (3 chunks) + d, two decode calls; batch 2 dies
            raise KeyboardInterrupt
        return real_decode(model, searcher, waveforms)

    monkeypatch.setattr(transcribe, "decode", dies_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False)
    done = {utt for utt, text in transcripts(manifest).items() if text is not None}
    assert done == {"long", "d"}  # longest first, saved after the first batch
    calls.clear()
    monkeypatch.setattr(transcribe, "decode", lambda *a: (calls.append(len(a[2])), real_decode(*a))[1])
    result = transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False)
    assert result["transcribed"] == 4 and result["kept"] == 2 and sum(calls) == 4
    again = transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=2, progress=False)
    assert again == {"transcribed": 0, "kept": 6, "skipped": {}}
    calls.clear()
    beam = transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", beam_size=2, batch_size=2, progress=False)
    assert beam["transcribed"] == 6 and sum(calls) == 8  # every file redone: 5 short + 3 chunks
    calls.clear()
    english = transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="en", beam_size=2, batch_size=2, progress=False)
    assert english["transcribed"] == 6 and sum(calls) == 8  # another language: every file again, the 70 s one in 3 chunks
    assert json.loads(manifest.read_text())["a"][f"{TRANSCRIPT_KEY}_options"]["language"] == "en"


def test_imported_transcripts_and_the_transcriber(corpus, tiny_models, tmp_path):
    """Transcripts of a CSV go into the manifest (switching back to Whisper redoes them); the Transcriber module transcribes as the stage does."""
    from speechbrain_ext.audio import load_audio
    from speechbrain_ext.transcribe import Transcriber, import_transcripts

    root, manifest = corpus
    transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False)
    whisper = transcripts(manifest)
    module = Transcriber(tiny_models["whisper"], language="fr", batch_size=4)
    waves = [load_audio(root / "wav" / f"{utt}.wav") for utt in ("a", "long")]
    assert module.transcribe(waves) == [whisper["a"], whisper["long"]]
    table = tmp_path / "transcripts.csv"
    table.write_text("filename,transcript\n" + "".join(f'{utt}.wav,"words of {utt}, said"\n' for utt in ("a", "b", "c", "d", "e", "long")))
    assert import_transcripts([manifest], table) == {"imported": 6, "kept": 0}
    assert transcripts(manifest)["a"] == "words of a, said"
    assert import_transcripts([manifest], table) == {"imported": 0, "kept": 6}
    assert transcribe_manifests([manifest], root, source=tiny_models["whisper"], language="fr", batch_size=4, progress=False)["transcribed"] == 6
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
        [sys.executable, "-m", "speechbrain_ext.transcribe", str(manifest), "--data_folder", str(root), "--model", "no-such/model", "--beam_size", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "1 audio files are missing" in proc.stderr and "d.wav" in proc.stderr
