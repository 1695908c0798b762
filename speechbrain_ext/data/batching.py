"""Batches by duration, and how much of a batch is padding.

A batch of utterances is padded to its longest one, so a random batch of
a long-tailed corpus is mostly zeros. SpeechBrain's
:class:`~speechbrain.dataio.sampler.DynamicBatchSampler` groups utterances
of similar duration into buckets and fills each batch up to a total
duration instead of a number of files; :func:`duration_batch_sampler`
configures it from the ``duration`` (seconds) that this project's
manifests carry (:func:`speechbrain_ext.data.dataio.load_split`).

The padding waste is the share of a padded batch that is padding:
``padded frames / (padded + real frames)``. :func:`padding_waste` computes
it from durations (to compare batchings before training, see
:func:`random_batches` and :func:`sampler_batches`) and
:class:`PaddingMeter` from the padded signals a Brain actually sees.

How a recipe uses the sampler with SpeechBrain's ``Brain.fit``::

    sampler = duration_batch_sampler(datasets["train"], max_batch_seconds=32.0)
    brain.fit(epochs, datasets["train"], datasets["valid"],
              train_loader_kwargs={"batch_sampler": sampler, "num_workers": 2},
              valid_loader_kwargs=...)

``batch_size`` and ``shuffle`` must not be given beside ``batch_sampler``
(the sampler shuffles); ``PaddedBatch`` stays the default ``collate_fn``.
Under DDP (``torchrun``) ``Brain`` wraps the sampler in
:class:`~speechbrain.dataio.sampler.DistributedSamplerWrapper`, which gives
each process its share of the batches and forwards ``set_epoch``. In a
single process ``Brain`` does not call ``set_epoch`` on a ``batch_sampler``
it did not make, and ``DynamicBatchSampler`` re-draws an epoch from
``seed + epoch``: without ``sampler.set_epoch(epoch)`` (e.g. in
``on_stage_start`` for ``Stage.TRAIN``) every epoch has the same batches
(from the second epoch on also in the same order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import DynamicBatchSampler

DEFAULT_NUM_BUCKETS = 20


def padding_waste(batches_of_durations: Iterable[Sequence[float]]) -> float:
    """Padded frames over all frames (padded + real) when each batch is padded to its longest item.

    Arguments
    ---------
    batches_of_durations : iterable of sequences of float
        Durations (or lengths in any unit) of the items of each batch.

    Returns
    -------
    float
        The waste in ``[0, 1)``; 0.0 when there are no items.

    Example
    -------
    >>> padding_waste([[1.0, 3.0], [2.0, 2.0]])  # (2 + 0) padded of (6 + 4) frames
    0.2
    """
    padded = total = 0.0
    for batch in batches_of_durations:
        lengths = [float(x) for x in batch]
        if not lengths:
            continue
        size = max(lengths) * len(lengths)
        total += size
        padded += size - sum(lengths)
    return padded / total if total > 0 else 0.0


def duration_batch_sampler(
    dataset_or_durations: DynamicItemDataset | Sequence[float],
    max_batch_seconds: float,
    num_buckets: int = DEFAULT_NUM_BUCKETS,
    shuffle: bool = True,
    seed: int = 0,
    max_batch_size: int | None = None,
    batch_ordering: str = "random",
    duration_key: str = "duration",
    max_item_seconds: float | None = None,
) -> DynamicBatchSampler:
    """SpeechBrain's ``DynamicBatchSampler`` holding at most ``max_batch_seconds`` of audio per batch.

    Utterances fall into ``num_buckets`` duration buckets (SpeechBrain's
    lognormal warping of ``(0, max_batch_seconds]``); a bucket whose upper
    boundary is ``b`` makes batches of ``int(max_batch_seconds / b)``
    utterances, so no batch holds more than ``max_batch_seconds``. An
    utterance longer than ``max_batch_seconds`` is a batch of its own.
    See the module docstring for passing it to ``Brain.fit`` (and calling
    ``set_epoch``).

    Arguments
    ---------
    dataset_or_durations : DynamicItemDataset or sequence of float
        A dataset whose entries carry ``duration_key`` in seconds (this
        project's manifests do), or the durations themselves (then the
        sampler yields indices into that list).
    max_batch_seconds : float
        Most audio (seconds, before padding) in one batch.
    num_buckets : int
        Duration buckets: more buckets, less padding, less random batches.
    shuffle : bool
        Draw new batches each epoch (from ``seed + epoch``); otherwise batches
        follow the dataset's order.
    seed : int
        Shuffling seed.
    max_batch_size : int, optional
        Most utterances in one batch (short utterances would otherwise make
        very large batches).
    batch_ordering : str
        ``random``, ``ascending`` or ``descending`` order of the batches.
    duration_key : str
        Manifest field with the duration in seconds.
    max_item_seconds : float, optional
        Durations are counted up to this (the recipes' ``max_seconds`` cut).

    Returns
    -------
    DynamicBatchSampler
        Yields lists of dataset indices.

    Example
    -------
    >>> durations = [3.0, 1.0, 9.0, 1.1, 3.1, 1.2]
    >>> sampler = duration_batch_sampler(durations, max_batch_seconds=8.5, num_buckets=10, batch_ordering="ascending")
    >>> [sorted(durations[i] for i in batch) for batch in sampler]  # 9 s > 8.5 s: a batch of its own
    [[1.0, 1.1, 1.2], [3.0, 3.1], [9.0]]
    """

    def seconds(value) -> float:
        value = float(value)
        return min(value, max_item_seconds) if max_item_seconds else value

    kwargs = {
        "num_buckets": num_buckets,
        "shuffle": shuffle,
        "batch_ordering": batch_ordering,
        "max_batch_ex": max_batch_size,
        "seed": seed,
    }
    if isinstance(dataset_or_durations, DynamicItemDataset):
        return DynamicBatchSampler(
            dataset_or_durations, max_batch_seconds, length_func=lambda entry: seconds(entry[duration_key]), **kwargs
        )
    lengths = [seconds(d) for d in dataset_or_durations]
    return DynamicBatchSampler(lengths, max_batch_seconds, lengths_list=lengths, **kwargs)


def max_seconds_for_batch_size(
    durations: Sequence[float],
    batch_size: float,
    num_buckets: int = DEFAULT_NUM_BUCKETS,
    seed: int = 0,
    iterations: int = 30,
) -> float:
    """The smallest ``max_batch_seconds`` (to bisection precision) whose batches hold ``batch_size`` utterances on average.

    Matches a duration batching to the fixed ``batch_size`` it replaces
    (about as many optimiser steps per epoch).

    Arguments
    ---------
    durations : sequence of float
        Utterance durations (seconds).
    batch_size : float
        Target mean number of utterances per batch.
    num_buckets, seed : int
        As for :func:`duration_batch_sampler`.
    iterations : int
        Bisection steps.

    Returns
    -------
    float
        ``max_batch_seconds``.

    Example
    -------
    >>> durations = np.random.default_rng(0).uniform(2.0, 5.0, 200).tolist()
    >>> limit = max_seconds_for_batch_size(durations, 8)
    >>> 20 < limit < 50, len(durations) / len(duration_batch_sampler(durations, limit)) >= 8
    (True, True)
    """
    n = len(durations)

    def mean_size(limit: float) -> float:
        return n / len(duration_batch_sampler(durations, limit, num_buckets=num_buckets, seed=seed))

    low, high = float(min(durations)), float(max(durations)) * batch_size * 4
    if mean_size(high) < batch_size:
        return high
    for _ in range(iterations):
        middle = (low + high) / 2
        if mean_size(middle) >= batch_size:
            high = middle
        else:
            low = middle
    return high


def random_batches(durations: Sequence[float], batch_size: int, seed: int = 0) -> list[list[float]]:
    """Durations of shuffled fixed-size batches (the last one may be smaller), as a plain ``shuffle=True`` loader makes.

    Arguments
    ---------
    durations : sequence of float
        Utterance durations.
    batch_size : int
        Utterances per batch.
    seed : int
        Shuffling seed.

    Returns
    -------
    list of lists of float
        Each batch's durations.

    Example
    -------
    >>> batches = random_batches([1.0, 2.0, 3.0, 4.0, 5.0], batch_size=2)
    >>> [len(b) for b in batches], sorted(sum(batches, []))
    ([2, 2, 1], [1.0, 2.0, 3.0, 4.0, 5.0])
    """
    order = np.random.default_rng(seed).permutation(len(durations))
    return [
        [float(durations[i]) for i in order[start : start + batch_size]] for start in range(0, len(order), batch_size)
    ]


def sampler_batches(sampler: Iterable[Sequence[int]], durations: Sequence[float]) -> list[list[float]]:
    """Durations of the batches of one pass over a batch sampler (e.g. :func:`duration_batch_sampler`).

    Arguments
    ---------
    sampler : iterable of sequences of int
        Yields each batch's indices.
    durations : sequence of float
        Duration of each index.

    Returns
    -------
    list of lists of float
        Each batch's durations.

    Example
    -------
    >>> sampler_batches([[0, 2], [1]], [1.0, 2.0, 3.0])
    [[1.0, 3.0], [2.0]]
    """
    return [[float(durations[i]) for i in batch] for batch in sampler]


class PaddingMeter:
    """Real and padded samples of the padded signals of a stage, for logging the padding waste.

    For a SpeechBrain ``PaddedBatch``, ``wavs, rel_lens = batch.sig``: the
    batch is ``wavs.shape[0] * wavs.shape[1]`` samples, of which
    ``round(rel_lens * wavs.shape[1])`` per utterance are real.

    Example
    -------
    >>> meter = PaddingMeter()
    >>> meter.update(torch.zeros(2, 10), torch.tensor([1.0, 0.4]))
    >>> meter.real, meter.total, meter.waste
    (14, 20, 0.3)
    >>> meter.reset(); meter.waste
    0.0
    """

    def __init__(self) -> None:
        self.real = 0
        self.total = 0

    def update(self, wavs: torch.Tensor, rel_lens: torch.Tensor) -> None:
        """Add one padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, time, ...)`` padded signals.
        rel_lens : torch.Tensor
            ``(batch,)`` lengths relative to ``wavs.shape[1]``.
        """
        max_len = int(wavs.shape[1])
        self.real += int(torch.round(rel_lens.detach().float().cpu() * max_len).sum())
        self.total += int(wavs.shape[0]) * max_len

    @property
    def padded(self) -> int:
        """Padding samples so far."""
        return self.total - self.real

    @property
    def waste(self) -> float:
        """Padded samples / all samples so far (0.0 before any batch)."""
        return self.padded / self.total if self.total else 0.0

    def reset(self) -> None:
        """Forget the counts (at the start of each stage)."""
        self.real = 0
        self.total = 0
