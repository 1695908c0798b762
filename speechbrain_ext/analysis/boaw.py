"""Bag of audio words over ComParE LLD frames, as openXBOW builds it: one codebook for the LLDs, one for their deltas."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from speechbrain_ext.analysis.compare2016 import N_LLD


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
        frame sample), so a :class:`~speechbrain_ext.analysis.compare2016.CachedFeatures` keeps memory bounded.
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
