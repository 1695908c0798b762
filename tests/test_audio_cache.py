"""The 16 kHz audio cache: a changed source is decoded again, and cached training batches equal uncached ones."""

import json
import os

import numpy as np
import soundfile
import torch
from speechbrain.dataio.batch import PaddedBatch
from torch.utils.data import DataLoader

from speechbrain_ext.data.audio_cache import AudioCache
from speechbrain_ext.data.dataio import recipe_datasets
from speechbrain_ext.training.tasks import ClassificationTask


def sine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def test_changed_source_is_decoded_again(tmp_path):
    """A rewritten file (new content, new mtime) misses the cache; its stale entry is removed."""
    path, cache = tmp_path / "a.wav", AudioCache(tmp_path / "cache")
    soundfile.write(path, sine(440, 0.5, 48000), 48000, subtype="FLOAT")
    first = cache.load(path).numpy()
    assert np.abs(first[800:-800] - sine(440, 0.5, 16000)[800:-800]).max() < 1e-3  # the 440 Hz tone, at 16 kHz
    assert np.array_equal(cache.load(path).numpy(), first)  # a hit: the stored signal
    entries = os.listdir(tmp_path / "cache")
    assert len(entries) == 1

    soundfile.write(path, sine(1000, 0.5, 48000), 48000, subtype="FLOAT")  # same size, other content
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = cache.load(path).numpy()
    assert np.abs(second[800:-800] - sine(1000, 0.5, 16000)[800:-800]).max() < 1e-3  # the new tone, not the old one
    assert os.listdir(tmp_path / "cache") != entries and len(os.listdir(tmp_path / "cache")) == 1


def write_corpus(folder, rate):
    """Six utterances of noise at ``rate`` and their manifests (the same files for train, valid and test)."""
    entries = {}
    for i in range(6):
        wav = folder / f"u{i}.wav"
        soundfile.write(wav, np.random.default_rng(i).normal(0, 0.1, int(rate * (0.3 + 0.1 * i))), rate)
        entries[f"u{i}"] = {"wav": "{data_root}/" + wav.name, "duration": 0.3 + 0.1 * i, "emo": "ab"[i % 2]}
    manifest = folder / "train.json"
    manifest.write_text(json.dumps(entries))
    return {split: str(manifest) for split in ("train", "valid", "test")}


def batches(manifests, folder, audio_cache):
    task = ClassificationTask("emo", 2, str(folder / f"labels_{bool(audio_cache)}.txt"))
    dataset = recipe_datasets(manifests, str(folder), task, audio_cache=audio_cache)["train"]
    return [(b.sig.data, b.sig.lengths) for b in DataLoader(dataset, batch_size=4, collate_fn=PaddedBatch)]


def test_cached_batches_equal_uncached_ones(tmp_path):
    """48 kHz sources: two epochs through the cache give the batches of decoding and resampling every time."""
    manifests = write_corpus(tmp_path, 48000)
    cache = tmp_path / "cache"
    reference = batches(manifests, tmp_path, audio_cache=False)
    for _epoch in range(2):  # the first fills the cache, the second reads it
        cached = batches(manifests, tmp_path, audio_cache=str(cache))
        assert len(os.listdir(cache)) == 6
        for (wavs, lens), (ref_wavs, ref_lens) in zip(cached, reference, strict=True):
            assert wavs.shape == ref_wavs.shape and torch.equal(lens, ref_lens)
            torch.testing.assert_close(wavs, ref_wavs, rtol=0, atol=1e-7)
    assert reference[0][0].shape[1] == int(16000 * 0.6)  # resampled to 16 kHz: 0.6 s is the first batch's longest

    # the default folder: audio_cache/ beside the training manifest
    batches(manifests, tmp_path, audio_cache=True)
    assert len(os.listdir(tmp_path / "audio_cache")) == 6


def test_sources_at_the_target_rate_are_read_directly(tmp_path):
    """16 kHz files gain nothing from a copy: no entry is written."""
    manifests = write_corpus(tmp_path, 16000)
    batches(manifests, tmp_path, audio_cache=str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
