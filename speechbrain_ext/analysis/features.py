"""Handcrafted baselines of w2v2_info_recovery (section IV(a), Table I): ComParE 2016 and its bag of audio words.

* ``compare_functionals``: the 6373 ComParE 2016 functionals of a file (openSMILE).
* ``compare_lld``: its 65 low-level descriptors and their 65 deltas per 10 ms frame (130 columns).
* ``boaw_compare_lld``: bag of audio words over the LLDs as openXBOW does it: one
  codebook for the 65 LLDs and one for the 65 deltas (500 words each in the
  paper), every frame assigned to its nearest word, a histogram per file.

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, load_audio

FEATURE_SET = "ComParE_2016"
BASELINES = ("compare_functionals", "boaw_compare_lld")  # Table I, G-1
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


class BagOfAudioWords:
    """Bag of audio words over ComParE LLD frames, as openXBOW builds it (w2v2_info_recovery: 500 + 500 words).

    Fitting (training files only): each of the 130 columns is standardised
    with the mean and standard deviation of all training frames (a constant
    column keeps scale 1), then k-means (scikit-learn ``KMeans``, k-means++
    initialisation, ``n_init`` runs, seeded) builds one codebook on the 65 LLD
    columns and one on the 65 delta columns, from at most ``max_fit_frames``
    training frames drawn at random without replacement.

    Transform: every frame is assigned to its nearest word (squared Euclidean
    distance) in each codebook, one word per frame (openXBOW's default), and
    a file's histogram is its word counts divided by its number of frames
    (term frequencies; each half of the vector sums to 1, so files of
    different lengths compare; openXBOW's default is raw counts). A file with
    no frames gets zeros.

    Arguments
    ---------
    codebook_size : int
        Words per codebook (the output has twice as many columns).
    seed : int
        Seeds the frame sample and k-means.
    standardize : bool
        Standardise the columns with the training statistics before clustering.
    max_fit_frames : int
        Most training frames k-means sees.
    n_init : int
        k-means restarts (the best inertia is kept).
    n_lld : int
        Columns of the first codebook (the 65 LLDs; the rest are their deltas).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> train = [rng.normal(size=(n, 6)) for n in (40, 50, 60)]
    >>> boaw = BagOfAudioWords(codebook_size=4, n_lld=3).fit(train)
    >>> H = boaw.transform(train + [np.zeros((0, 6))])
    >>> H.shape, np.allclose(H[:3, :4].sum(1), 1), np.allclose(H[:3, 4:].sum(1), 1), float(H[3].sum())
    ((4, 8), True, True, 0.0)
    """

    def __init__(
        self,
        codebook_size: int = 500,
        seed: int = 0,
        standardize: bool = True,
        max_fit_frames: int = 200_000,
        n_init: int = 1,
        n_lld: int = N_LLD,
    ):
        self.codebook_size, self.seed, self.standardize = codebook_size, seed, standardize
        self.max_fit_frames, self.n_init, self.n_lld = max_fit_frames, n_init, n_lld
        self.mean_ = self.scale_ = self.codebooks_ = None

    def fit(self, lld_list: Sequence[np.ndarray]) -> BagOfAudioWords:
        """Learn the standardisation and the two codebooks from the training files' frames.

        ``lld_list`` is read twice, one file at a time (statistics, then the
        frame sample), so a :class:`CachedFeatures` keeps memory bounded.
        """
        from sklearn.cluster import KMeans

        counts, total, mean, m2 = [], 0, None, None
        for x in lld_list:  # Chan et al.'s pairwise update: exact mean and variance without holding the frames
            x = np.asarray(x, dtype=np.float64)
            counts.append(len(x))
            if not len(x):
                continue
            if mean is None:
                mean, m2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
            n, x_mean = len(x), x.mean(axis=0)
            delta = x_mean - mean
            mean = mean + delta * n / (total + n)
            m2 = m2 + ((x - x_mean) ** 2).sum(axis=0) + delta**2 * total * n / (total + n)
            total += n
        if total < self.codebook_size:
            raise ValueError(f"{total} training frames cannot make a codebook of {self.codebook_size} words")
        if mean.shape[0] <= self.n_lld:
            raise ValueError(
                f"frames have {mean.shape[0]} columns; expected {self.n_lld} LLDs followed by their deltas"
            )
        std = np.sqrt(m2 / total)
        if self.standardize:
            self.mean_, self.scale_ = mean, np.where(std > 0, std, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros_like(mean), np.ones_like(std)

        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.choice(total, size=min(total, self.max_fit_frames), replace=False))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        sample = []
        for i, x in enumerate(lld_list):
            lo, hi = np.searchsorted(chosen, [offsets[i], offsets[i + 1]])
            if hi > lo:
                sample.append(np.asarray(x, dtype=np.float64)[chosen[lo:hi] - offsets[i]])
        sample = (np.concatenate(sample) - self.mean_) / self.scale_
        self.codebooks_ = []
        for columns in self._halves():
            kmeans = KMeans(n_clusters=self.codebook_size, init="k-means++", n_init=self.n_init, random_state=self.seed)
            self.codebooks_.append(kmeans.fit(sample[:, columns]).cluster_centers_.astype(np.float64))
        return self

    def _halves(self) -> tuple[slice, slice]:
        return slice(0, self.n_lld), slice(self.n_lld, None)

    def assign(self, frames: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """``(n_frames, 2)``: the nearest word of each (raw, unstandardised) frame in each codebook."""
        if self.codebooks_ is None:
            raise RuntimeError("BagOfAudioWords.fit must be called before transform")
        frames = (np.asarray(frames, dtype=np.float64) - self.mean_) / self.scale_
        words = np.empty((len(frames), 2), dtype=np.int64)
        for k, (columns, codebook) in enumerate(zip(self._halves(), self.codebooks_)):
            norms = (codebook**2).sum(axis=1)
            for start in range(
                0, len(frames), chunk
            ):  # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin
                block = frames[start : start + chunk, columns]
                words[start : start + chunk, k] = np.argmin(norms - 2.0 * block @ codebook.T, axis=1)
        return words

    def transform(self, lld_list: Iterable[np.ndarray]) -> np.ndarray:
        """``(n_files, 2 * codebook_size)`` float32 term-frequency histograms: LLD words, then delta words."""
        k = self.codebook_size
        rows = []
        for x in lld_list:
            row = np.zeros(2 * k, dtype=np.float64)
            if len(x):
                words = self.assign(x)
                row[:k] = np.bincount(words[:, 0], minlength=k) / len(x)
                row[k:] = np.bincount(words[:, 1], minlength=k) / len(x)
            rows.append(row)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), 2 * k)

    def fit_transform(self, lld_list: Sequence[np.ndarray]) -> np.ndarray:
        return self.fit(lld_list).transform(lld_list)


def read_manifest_paths(
    manifest: str | os.PathLike, data_folder: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """``(ids, wav paths)`` of a prepared manifest, in its order, ``{data_root}`` replaced by ``data_folder``.

    Example
    -------
    >>> import tempfile
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
        See :func:`extract_file`.

    Returns
    -------
    dict
        ``{"compare_functionals": {split: (ids, X)}, "boaw_compare_lld": {split: (ids, X)}}``.

    Example
    -------
    >>> import tempfile, soundfile
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
