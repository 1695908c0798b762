"""ComParE 2016 features of audio files with openSMILE (functionals, or LLDs and their deltas per frame), and their cache on disk.

Features come from the ``opensmile`` package (its wheel ships the openSMILE
library, so extraction works offline). Audio is read with :func:`speechbrain_ext.data.audio.load_audio`
(channels averaged) and resampled to 16 kHz, the rate of the SSL models these
baselines are compared with; ``sample_rate=None`` keeps each file's own rate,
which is what ``opensmile.Smile(...).process_file`` computes on a mono file.

Per-file features are cached on disk (:class:`FeatureCache`), so a second
fold, a second run or the probe verb does not extract them again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, load_audio

FEATURE_SET = "ComParE_2016"
LEVELS = ("functionals", "lld")
N_FUNCTIONALS = 6373
N_LLD = 65  # and as many deltas: 130 columns at level "lld"
_TAIL = 4  # trailing frames whose openSMILE timestamps are not checked (see extract_file)


@functools.lru_cache(maxsize=4)
def _smile(level: str):
    """One ``opensmile.Smile`` per feature level (building one parses the config; reuse it)."""
    import opensmile

    levels = {
        "functionals": opensmile.FeatureLevel.Functionals,
        "lld": opensmile.FeatureLevel.LowLevelDescriptors,
        "delta": opensmile.FeatureLevel.LowLevelDescriptors_Deltas,
    }
    return opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016, feature_level=levels[level])


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def _read(path: str | os.PathLike, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """A file as mono float32 samples and their rate (``sample_rate=None``: the file's own rate)."""
    if sample_rate is None:
        import soundfile

        sample_rate = soundfile.info(str(path)).samplerate
    return load_audio(path, sample_rate).numpy(), int(sample_rate)


def extract_file(
    path: str | os.PathLike, level: str = "functionals", sample_rate: int | None = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """ComParE 2016 features of one file: ``(6373,)`` functionals or ``(n_frames, 130)`` LLDs + deltas, float32.

    At level ``"lld"`` openSMILE is run twice (LLDs, then their deltas) and the
    columns concatenated, the 65 LLDs first. The delta output holds two frames
    more than the LLD output: the delta regression (window 2) flushes extra
    frames at the end of the input. Delta frame ``t`` is the regression
    around LLD frame ``t`` (checked on the values: the first frames of both
    outputs line up, and recomputing the deltas from the LLDs matches), so the
    trailing delta frames are dropped. openSMILE's timestamps of the last
    frames of a file are unreliable (repeated or clamped), so only the start
    times before the last ``_TAIL`` frames are checked to agree.

    Arguments
    ---------
    path : str or PathLike
        Audio file (any format soundfile reads).
    level : str
        ``"functionals"`` or ``"lld"``.
    sample_rate : int or None
        Rate the audio is resampled to before extraction (16 kHz); None keeps the file's rate.

    Returns
    -------
    np.ndarray
        float32 features.

    Example
    -------
    >>> import tempfile, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "sine.wav")
    >>> soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)
    >>> extract_file(path).shape
    (6373,)
    >>> lld = extract_file(path, "lld")
    >>> lld.shape[1], 95 <= lld.shape[0] <= 100  # 10 ms frames
    (130, True)
    """
    _check_level(level)
    signal, rate = _read(path, sample_rate)
    if level == "functionals":
        return _smile("functionals").process_signal(signal, rate).to_numpy(dtype=np.float32)[0]
    lld = _smile("lld").process_signal(signal, rate)
    delta = _smile("delta").process_signal(signal, rate)
    n = len(lld)
    if not n <= len(delta) <= n + _TAIL:
        raise RuntimeError(f"{path}: openSMILE gave {len(delta)} delta frames for {n} LLD frames")
    head = max(0, n - _TAIL)
    if not (lld.index.get_level_values("start")[:head] == delta.index.get_level_values("start")[:head]).all():
        raise RuntimeError(f"{path}: openSMILE's LLD and delta frames do not start at the same times")
    return np.concatenate([lld.to_numpy(dtype=np.float32), delta.to_numpy(dtype=np.float32)[:n]], axis=1)


class FeatureCache:
    """Per-file ComParE features on disk: ``<folder>/<set>_<level>_<rate>/<hh>/<hash>.npy``.

    The hash covers the file's absolute path, modification time and size and
    the opensmile version, so an edited or replaced file is extracted again.
    Each file is written through a temporary file and a rename: an interrupted
    extraction keeps what it finished and never leaves half an array. Only
    the files asked for are held in memory.

    Arguments
    ---------
    folder : str or PathLike
        Cache root (shared by every level and rate).
    level : str
        ``"functionals"`` or ``"lld"``.
    sample_rate : int or None
        See :func:`extract_file`.

    Example
    -------
    >>> import tempfile, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "sine.wav")
    >>> soundfile.write(path, 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> cache.missing([path]) == [path]
    True
    >>> first = cache.get([path])
    >>> cache.missing([path]), bool(np.array_equal(cache.get([path]), first)), first.shape
    ([], True, (1, 6373))
    """

    def __init__(
        self, folder: str | os.PathLike, level: str = "functionals", sample_rate: int | None = TARGET_SAMPLE_RATE
    ):
        _check_level(level)
        self.level, self.sample_rate = level, sample_rate
        self.folder = Path(folder) / f"{FEATURE_SET}_{level}_{'native' if sample_rate is None else f'{sample_rate}Hz'}"

    def entry(self, path: str | os.PathLike) -> Path:
        """Where the features of ``path`` (as it is now on disk) are or will be stored."""
        import opensmile

        real = os.path.realpath(path)
        stat = os.stat(real)
        key = json.dumps([real, stat.st_mtime_ns, stat.st_size, opensmile.__version__])
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def missing(self, paths: Iterable[str | os.PathLike]) -> list:
        """The paths whose features are not cached yet."""
        return [p for p in paths if not self.entry(p).is_file()]

    def ensure(self, paths: Iterable[str | os.PathLike], progress: bool = False) -> None:
        """Extract and store the features of every path not cached yet (nothing is kept in memory)."""
        todo = list(dict.fromkeys(self.missing(paths)))
        for path in tqdm(todo, desc=f"ComParE {self.level}", disable=not progress or not todo):
            target = self.entry(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")
            try:
                np.save(tmp, extract_file(path, self.level, self.sample_rate))
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    tmp.unlink()

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """The cached features of one file (extracted first when missing)."""
        target = self.entry(path)
        if not target.is_file():
            self.ensure([path])
        return np.load(target)

    def get(self, paths: Sequence[str | os.PathLike], progress: bool = False) -> np.ndarray | list[np.ndarray]:
        """Features of ``paths`` in order: ``(n, 6373)`` functionals or a list of ``(n_frames, 130)`` arrays."""
        self.ensure(paths, progress)
        arrays = [np.load(self.entry(p)) for p in paths]
        if self.level == "functionals":
            return np.stack(arrays) if arrays else np.zeros((0, N_FUNCTIONALS), np.float32)
        return arrays

    def lazy(self, paths: Sequence[str | os.PathLike], progress: bool = False) -> CachedFeatures:
        """A read-on-access sequence of the features of ``paths`` (extracted first), for data that does not fit in memory."""
        self.ensure(paths, progress)
        return CachedFeatures(self, list(paths))


class CachedFeatures(Sequence):
    """A sequence whose item ``i`` is read from a :class:`FeatureCache` when asked for."""

    def __init__(self, cache: FeatureCache, paths: list):
        self.cache, self.paths = cache, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return CachedFeatures(self.cache, self.paths[index])
        return self.cache.load(self.paths[index])


def opensmile_features(
    paths: Sequence[str | os.PathLike],
    level: str = "functionals",
    progress: bool = False,
    sample_rate: int | None = TARGET_SAMPLE_RATE,
    cache_folder: str | os.PathLike | None = None,
) -> np.ndarray | list[np.ndarray]:
    """ComParE 2016 features of several files with openSMILE.

    Arguments
    ---------
    paths : sequence of str or PathLike
        Audio files.
    level : str
        ``"functionals"``: ``(n_files, 6373)`` float32. ``"lld"``: a list of
        ``(n_frames, 130)`` float32 arrays, 65 LLDs then their 65 deltas (see :func:`extract_file`).
    progress : bool
        A progress bar over the files.
    sample_rate : int or None
        Rate the audio is resampled to (16 kHz); None keeps each file's rate.
    cache_folder : str or PathLike, optional
        Read and store per-file features there (:class:`FeatureCache`).

    Returns
    -------
    np.ndarray or list of np.ndarray

    Example
    -------
    >>> import tempfile, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{f}.wav") for f in (220, 330)]
    >>> for path, f in zip(paths, (220, 330)):
    ...     soundfile.write(path, 0.3 * np.sin(2 * np.pi * f * np.arange(16000) / 16000), 16000)
    >>> X = opensmile_features(paths)
    >>> X.shape, X.dtype
    ((2, 6373), dtype('float32'))
    >>> [x.shape[1] for x in opensmile_features(paths, level="lld")]
    [130, 130]
    """
    _check_level(level)
    if cache_folder is not None:
        return FeatureCache(cache_folder, level, sample_rate).get(paths, progress)
    arrays = [extract_file(p, level, sample_rate) for p in tqdm(paths, desc=f"ComParE {level}", disable=not progress)]
    if level == "functionals":
        return np.stack(arrays) if arrays else np.zeros((0, N_FUNCTIONALS), np.float32)
    return arrays
