"""Handcrafted baselines of w2v2_info_recovery (section IV(a), Table I): ComParE 2016 and its bag of audio words.

* ``compare_functionals``: the 6373 ComParE 2016 functionals of a file (openSMILE).
* ``compare_lld``: its 65 low-level descriptors and their 65 deltas per 10 ms frame (130 columns).
* ``boaw_compare_lld``: bag of audio words over the LLDs as openXBOW does it: one
  codebook for the 65 LLDs and one for the 65 deltas (500 words each in the
  paper), every frame assigned to its nearest word, a histogram per file.

The features are extracted and cached by :mod:`~speechbrain_ext.analysis.compare2016` (openSMILE) and
the histograms built by :class:`~speechbrain_ext.analysis.boaw.BagOfAudioWords`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from speechbrain_ext.analysis.boaw import BagOfAudioWords
from speechbrain_ext.analysis.compare2016 import FeatureCache
from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE

BASELINES = ("compare_functionals", "boaw_compare_lld")  # Table I, G-1


def read_manifest_paths(
    manifest: str | os.PathLike, data_folder: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """``(ids, wav paths)`` of a prepared manifest, in its order, ``{data_root}`` replaced by ``data_folder``.

    Example
    -------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "test.json"
    >>> _ = path.write_text(json.dumps({"u1": {"wav": "{data_root}/a.wav"}, "u2": {"wav": "/b.wav"}}))
    >>> read_manifest_paths(path, "/data")
    (['u1', 'u2'], ['/data/a.wav', '/b.wav'])
    """
    from speechbrain_ext.analysis.runs import read_resolved_manifest

    entries = read_resolved_manifest(manifest, data_folder)
    return [str(utt) for utt in entries], [str(entry["wav"]) for entry in entries.values()]


def feature_baselines(
    manifests: Mapping[str, str | os.PathLike],
    cache_folder: str | os.PathLike,
    fit_split: str = "train",
    progress: bool = False,
    data_folder: str | os.PathLike | None = None,
    codebook_size: int = 500,
    seed: int = 0,
    max_fit_frames: int = 200_000,
    sample_rate: int | None = TARGET_SAMPLE_RATE,
) -> dict[str, dict[str, tuple[list[str], np.ndarray]]]:
    """The two handcrafted baselines of Table I for the splits of one fold.

    ``compare_functionals``: the 6373 functionals per file. ``boaw_compare_lld``:
    :class:`BagOfAudioWords` histograms (``2 * codebook_size`` columns) whose
    standardisation and codebooks are fitted on ``fit_split`` only. Per-file
    features are cached under ``cache_folder``; LLD frames are read back one
    file at a time, so memory holds the k-means sample and the outputs only.

    Arguments
    ---------
    manifests : dict
        Split name -> prepared JSON manifest (``{utt_id: {"wav": ...}}``).
    cache_folder : str or PathLike
        :class:`FeatureCache` root.
    fit_split : str
        The split BoAW is fitted on (the fold's training files).
    progress : bool
        Progress bars for the extractions.
    data_folder : str or PathLike, optional
        What ``{data_root}`` stands for in the manifests.
    codebook_size, seed, max_fit_frames : int
        See :class:`BagOfAudioWords` (500 words per codebook in the paper).
    sample_rate : int or None
        See :func:`~speechbrain_ext.analysis.compare2016.extract_file`.

    Returns
    -------
    dict
        ``{"compare_functionals": {split: (ids, X)}, "boaw_compare_lld": {split: (ids, X)}}``.

    Example
    -------
    >>> import json, tempfile, soundfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> for f in (200, 300, 400, 500):
    ...     soundfile.write(folder / f"{f}.wav", 0.3 * np.sin(2 * np.pi * f * np.arange(8000) / 16000), 16000)
    >>> manifests = {}
    >>> for split, fs in {"train": (200, 300, 400), "test": (500,)}.items():
    ...     manifests[split] = folder / f"{split}.json"
    ...     _ = manifests[split].write_text(json.dumps({f"u{f}": {"wav": f"{{data_root}}/{f}.wav"} for f in fs}))
    >>> out = feature_baselines(manifests, folder / "cache", data_folder=folder, codebook_size=2)
    >>> out["compare_functionals"]["train"][1].shape, out["boaw_compare_lld"]["test"][0], out["boaw_compare_lld"]["test"][1].shape
    ((3, 6373), ['u500'], (1, 4))
    """
    if fit_split not in manifests:
        raise ValueError(f"fit_split {fit_split!r} is not one of the manifests' splits {sorted(manifests)}")
    splits = {split: read_manifest_paths(path, data_folder) for split, path in manifests.items()}
    every_path = [p for _, paths in splits.values() for p in paths]
    matrices = baseline_matrices(
        splits[fit_split][1],
        every_path,
        BASELINES,
        cache_folder,
        codebook_size,
        seed,
        max_fit_frames,
        sample_rate,
        progress,
    )
    out: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {name: {} for name in BASELINES}
    start = 0
    for split, (ids, paths) in splits.items():
        for name in BASELINES:
            out[name][split] = (ids, matrices[name][start : start + len(paths)])
        start += len(paths)
    return out


def baseline_matrices(
    fit_paths: Sequence[str],
    paths: Sequence[str],
    names: Sequence[str] = BASELINES,
    cache_folder: str | os.PathLike = "opensmile_cache",
    codebook_size: int = 500,
    seed: int = 0,
    max_fit_frames: int = 200_000,
    sample_rate: int | None = TARGET_SAMPLE_RATE,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Rows of ``paths`` for each baseline in ``names``; BoAW's standardisation and codebooks are fitted on ``fit_paths`` only.

    The shared core of :func:`feature_baselines` and the ``probe`` verb; per-file features come from the cache.
    """
    out = {}
    if "compare_functionals" in names:
        functionals = FeatureCache(cache_folder, "functionals", sample_rate)
        functionals.ensure(paths, progress)
        out["compare_functionals"] = functionals.get(paths)
    if "boaw_compare_lld" in names:
        lld = FeatureCache(cache_folder, "lld", sample_rate)
        lld.ensure([*fit_paths, *paths], progress)
        boaw = BagOfAudioWords(codebook_size=codebook_size, seed=seed, max_fit_frames=max_fit_frames).fit(
            lld.lazy(list(fit_paths))
        )
        out["boaw_compare_lld"] = boaw.transform(lld.lazy(list(paths)))
    return out
