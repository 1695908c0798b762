"""Many audio files read for the interfaces' batched runs: the DataLoader dataset, its padding collate, the worker count.

:class:`~speechbrain_ext.serving.model_interface.ModelInterface` plans batches of file indices by length
(``classify_files``, ``predict_files``); these read the files of a batch in background workers, pad them into
one tensor (:func:`pad_collate`) and split a batch into :func:`equal_runs` of one length where padding must not
be seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from speechbrain_ext.data.audio import TARGET_SAMPLE_RATE, AudioLoadError, load_audio


class AudioFiles(torch.utils.data.Dataset):
    """Files as 16 kHz mono waveforms, read in DataLoader workers; a file that cannot be read gives its error.

    Arguments
    ---------
    paths : sequence of str or PathLike
        Audio files.
    load : callable
        Reads one file at a sample rate (default
        :func:`~speechbrain_ext.data.audio.load_audio`; the interfaces pass the reader their one-by-one path uses).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], load: Callable = load_audio):
        self.paths, self.load = list(paths), load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, self.load(self.paths[index], TARGET_SAMPLE_RATE)
        except AudioLoadError as err:
            return index, err


def pad_collate(items):
    """``(indices, padded waveforms, sample counts, [(index, error), ...])`` of a batch of :class:`AudioFiles` items."""
    good = [(i, wav) for i, wav in items if isinstance(wav, torch.Tensor)]
    bad = [(i, err) for i, err in items if not isinstance(err, torch.Tensor)]
    if not good:
        return [], torch.zeros(0, 1), torch.zeros(0, dtype=torch.long), bad
    wavs = torch.nn.utils.rnn.pad_sequence([wav for _, wav in good], batch_first=True)
    return [i for i, _ in good], wavs, torch.tensor([len(wav) for _, wav in good]), bad


def default_num_workers(device: str | torch.device = "cpu") -> int:
    """Background audio readers: ``min(2, CPU count)`` beside an accelerator; on the CPU only the cores its compute threads leave free.

    On 2 cores the CPU model's two threads and two readers slow each other
    down (measured: see the README), so a CPU run there reads in-process.

    Example
    -------
    >>> default_num_workers("cuda:0") == min(2, os.cpu_count() or 1)
    True
    """
    cpus = os.cpu_count() or 1
    if str(device).startswith("cpu"):
        return max(0, min(2, cpus - torch.get_num_threads()))
    return min(2, cpus)


def equal_runs(lengths: list[int]) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of equal consecutive values.

    Example
    -------
    >>> equal_runs([5, 5, 3, 3, 3, 5])
    [(0, 2), (2, 5), (5, 6)]
    """
    runs, start = [], 0
    for k in range(1, len(lengths) + 1):
        if k == len(lengths) or lengths[k] != lengths[start]:
            runs.append((start, k))
            start = k
    return runs
