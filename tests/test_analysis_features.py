"""ComParE 2016 baselines of w2v2_info_recovery (speechbrain_ext.analysis.features) against openSMILE and the BoAW definition."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import opensmile
import pytest
import soundfile
import torch
import torchaudio

from data_prep.ravdess import prepare_ravdess
from speechbrain_ext.analysis import features as F
from speechbrain_ext.analysis.boaw import BagOfAudioWords
from speechbrain_ext.analysis.compare2016 import opensmile_features

SPLIT_FILES = {"train": 6, "valid": 2, "test": 2}  # a handful of files: openSMILE takes ~0.1 s a file
CODEBOOK = 8


def reference(path, level) -> np.ndarray:
    """The opensmile package's own ``process_file`` output (the file's own rate, first channel)."""
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016, feature_level=level)
    return smile.process_file(str(path))


@pytest.fixture(scope="module")
def fold(registry_corpora, tmp_path_factory):
    """Small manifests of one RAVDESS fold (the suite's synthetic corpus) and the BoAW baselines computed on them."""
    corpus = registry_corpora["RAVDESS"]
    root = tmp_path_factory.mktemp("features")
    prepared = prepare_ravdess(corpus, root / "prep", allow_subset=True)
    manifests = {}
    for split, count in SPLIT_FILES.items():
        entries = json.loads(Path(prepared[split]).read_text(encoding="utf-8"))
        manifests[split] = root / f"{split}.json"
        manifests[split].write_text(json.dumps(dict(list(entries.items())[:count])), encoding="utf-8")
    paths = {split: F.read_manifest_paths(m, corpus)[1] for split, m in manifests.items()}
    cache = root / "cache"
    out = F.feature_baselines(manifests, cache, data_folder=corpus, codebook_size=CODEBOOK, seed=0)
    return {"corpus": corpus, "manifests": manifests, "paths": paths, "cache": cache, "out": out}


def test_functionals_equal_opensmile_process_file(fold, tmp_path):
    path = fold["paths"]["test"][0]
    assert soundfile.info(path).samplerate == 48000
    ref = reference(path, opensmile.FeatureLevel.Functionals)
    native = opensmile_features([path], sample_rate=None)
    assert native.shape == (1, 6373) == (1, ref.shape[1]) and native.dtype == np.float32
    assert np.allclose(native[0], ref.to_numpy()[0], rtol=1e-6, atol=1e-7, equal_nan=True)

    # Default: 16 kHz. The reference resamples with torchaudio's default windowed sinc and lets openSMILE
    # read a float wav at 16 kHz. (It must be the same resampler: ~300 functionals move by more than 1e-4
    # relative when the samples move by 2e-7, e.g. with torchaudio.functional.resample's rounding.)
    data, rate = soundfile.read(path, dtype="float32")
    resampled = torchaudio.transforms.Resample(rate, 16000)(torch.from_numpy(data)).numpy()
    copy = tmp_path / "16k.wav"
    soundfile.write(copy, resampled, 16000, subtype="FLOAT")
    ref16 = reference(copy, opensmile.FeatureLevel.Functionals).to_numpy()[0]
    ours = opensmile_features([path])[0]
    assert np.allclose(ours, ref16, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert not np.allclose(ours, native[0], rtol=1e-3)  # the rate matters: the two checks are distinct
    # What feature_baselines returns for the split is the same extraction, in manifest order.
    ids, X = fold["out"]["compare_functionals"]["test"]
    assert ids == list(json.loads(fold["manifests"]["test"].read_text()))
    assert np.array_equal(X, opensmile_features(fold["paths"]["test"]))


def test_lld_are_opensmile_lld_then_deltas(fold):
    path = fold["paths"]["valid"][0]
    lld = opensmile_features([path], level="lld", sample_rate=None)[0]
    ref_lld = reference(path, opensmile.FeatureLevel.LowLevelDescriptors)
    ref_delta = reference(path, opensmile.FeatureLevel.LowLevelDescriptors_Deltas)
    n = len(ref_lld)
    assert lld.shape == (n, 130) and lld.dtype == np.float32
    assert [c.replace("_de", "", 1) for c in ref_delta.columns] == list(
        ref_lld.columns
    )  # same order (x_sma_de[0] names x_sma[0])
    assert np.allclose(lld[:, :65], ref_lld.to_numpy(), rtol=1e-6, atol=1e-7)
    assert np.allclose(lld[:, 65:], ref_delta.to_numpy()[:n], rtol=1e-6, atol=1e-7)
    # Delta frame t belongs to LLD frame t: openSMILE's delta (regression over +-2 frames) recomputed
    # from the LLDs on smooth columns, away from the edges.
    cols = [
        i for i, c in enumerate(ref_lld.columns) if c.startswith(("mfcc_sma[", "pcm_RMSenergy", "audspec_lengthL1norm"))
    ]
    x = ref_lld.to_numpy(dtype=np.float64)[:, cols]
    t = np.arange(2, n - 2)
    delta = (x[t + 1] - x[t - 1] + 2 * (x[t + 2] - x[t - 2])) / 10
    assert np.allclose(lld[t][:, [65 + c for c in cols]], delta, rtol=1e-3, atol=1e-4)


def naive_histogram(frames: np.ndarray, mean, scale, codebooks) -> np.ndarray:
    """BoAW from the definition: each standardised frame's nearest codeword per half, counts over frames."""
    counts = [np.zeros(len(codebooks[0])), np.zeros(len(codebooks[1]))]
    for frame in frames:
        z = (frame.astype(np.float64) - mean) / scale
        for half, part in enumerate((z[:65], z[65:])):
            distances = [sum((part[j] - word[j]) ** 2 for j in range(len(part))) for word in codebooks[half]]
            counts[half][int(np.argmin(distances))] += 1
    return np.concatenate(counts) / len(frames)


def test_boaw_equals_naive_assignment_and_fits_on_train_only(fold):
    train = opensmile_features(fold["paths"]["train"], level="lld", cache_folder=fold["cache"])
    test = opensmile_features(fold["paths"]["test"], level="lld", cache_folder=fold["cache"])
    boaw = BagOfAudioWords(codebook_size=CODEBOOK, seed=0).fit(train)
    frames = np.concatenate(train).astype(np.float64)
    assert np.allclose(boaw.mean_, frames.mean(0)) and np.allclose(
        boaw.scale_[frames.std(0) > 0], frames.std(0)[frames.std(0) > 0]
    )
    assert not np.allclose(boaw.mean_, np.concatenate(train + test).astype(np.float64).mean(0))
    assert [c.shape for c in boaw.codebooks_] == [(CODEBOOK, 65), (CODEBOOK, 65)]

    H = boaw.transform(test)
    assert H.shape == (len(test), 2 * CODEBOOK)
    for x, row in zip(test, H):
        assert np.allclose(row, naive_histogram(x, boaw.mean_, boaw.scale_, boaw.codebooks_), atol=1e-7)
    assert len({tuple(row) for row in H}) == len(test) and (H > 0).sum() > 4  # not a degenerate codebook

    # feature_baselines fitted its BoAW on the training manifest only: it equals this one on every split.
    for split, paths in fold["paths"].items():
        ids, X = fold["out"]["boaw_compare_lld"][split]
        assert len(ids) == len(paths) == SPLIT_FILES[split]
        assert np.allclose(
            X, boaw.transform(opensmile_features(paths, level="lld", cache_folder=fold["cache"])), atol=1e-7
        )
    fitted_on_all = BagOfAudioWords(codebook_size=CODEBOOK, seed=0).fit(train + test)
    assert not np.allclose(fold["out"]["boaw_compare_lld"]["test"][1], fitted_on_all.transform(test))


def test_second_run_reads_the_cache(fold, monkeypatch):
    def no_opensmile(*args, **kwargs):
        raise AssertionError("openSMILE called although the features are cached")

    monkeypatch.setattr(opensmile.Smile, "process_signal", no_opensmile)
    monkeypatch.setattr(opensmile.Smile, "process_file", no_opensmile)
    again = F.feature_baselines(
        fold["manifests"], fold["cache"], data_folder=fold["corpus"], codebook_size=CODEBOOK, seed=0
    )
    for name, splits in fold["out"].items():
        for split, (ids, X) in splits.items():
            assert again[name][split][0] == ids and np.array_equal(again[name][split][1], X)
    # A file changed on disk (new mtime) is extracted again.
    path = fold["paths"]["train"][0]
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        with pytest.raises(AssertionError, match="openSMILE called"):
            opensmile_features([path], cache_folder=fold["cache"])
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
