"""Streaming emotion recognition: one decision every ``hop`` seconds over the last ``window`` seconds of a live stream.

Audio arrives as 16 kHz mono chunks of any size (a microphone, a telephone
line, a pipe). The last ``window`` seconds live in a :class:`RingBuffer` of
fixed size, so memory stays that of one window however long the stream runs
and whatever the chunk sizes (a chunk longer than the window is consumed hop
by hop, never stored whole). Each window is classified as
``classify_batch`` classifies it -- the same answer as ``classify_file`` on a
file holding exactly those samples -- because the encoder's context (a
transformer over the whole window, and for base-sized wav2vec2 a group norm
over time) is the window and nothing else.

When decisions are made (``W`` = window, ``H`` = hop, ``T`` = samples so far):

- the k-th decision covers ``[k H, k H + W)`` and is made as soon as sample
  ``k H + W`` has arrived: nothing is decided before a full window has
  arrived (a decision on a shorter, growing window would be a different
  input whose answer jumps as it grows);
- at the end of the stream, when samples arrived after the last decision's
  end (a partial hop), one last decision covers the last ``W`` seconds
  ``[T - W, T)``, so the stream is covered up to its end (the last window
  overlaps the one before it by more than ``W - H``); a stream shorter than
  the window gets a single decision over all of it, and one shorter than
  ``min(W, 0.1 s)`` gets none (too short for an SSL encoder).

``latency_ms`` of a decision is the time from the arrival of the window's
last sample to the decision: by default from the moment the chunk holding it
was handed to :func:`stream_decisions`; with a ``clock`` (a live or paced
source, :class:`Pacer`), from the moment that sample was due on the
stream's clock, so a model slower than real time shows a growing latency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

SAMPLE_RATE = 16000
MIN_SECONDS = 0.1  # the shortest stream that still gets a (final) decision


@dataclass
class StreamDecision:
    """One decision of a stream: the window ``[start, end)`` in seconds from the stream's start, and its answer."""

    start: float
    end: float
    label: str | None
    probabilities: dict[str, float]
    latency_ms: float  # from the arrival of the window's last sample to this decision
    compute_ms: float = 0.0  # the classification alone
    final: bool = False  # the end-of-stream decision (after a partial hop, or over a stream shorter than the window)

    def as_json(self) -> dict:
        """The JSON-lines record: ``start``, ``end``, ``label``, ``probabilities``, ``latency_ms``."""
        return {
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "label": self.label,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "latency_ms": round(self.latency_ms, 3),
        }


class RingBuffer:
    """The last ``capacity`` samples of a stream in one fixed float32 array.

    Arguments
    ---------
    capacity : int
        Samples kept (the window).

    Example
    -------
    >>> ring = RingBuffer(4)
    >>> ring.push(np.arange(3)); ring.push(np.arange(3, 6))
    >>> ring.last(4).tolist(), len(ring), ring.total, ring.data.size
    ([2.0, 3.0, 4.0, 5.0], 4, 6, 4)
    >>> ring.push(np.arange(10, 20)); ring.last(2).tolist()
    [18.0, 19.0]
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.data = np.zeros(int(capacity), dtype=np.float32)
        self.total = 0  # samples pushed since the start

    def __len__(self) -> int:
        return min(self.total, self.data.size)

    def push(self, samples: np.ndarray) -> None:
        """Append samples; only the last ``capacity`` are kept."""
        n, cap = len(samples), self.data.size
        tail = np.asarray(samples, dtype=np.float32)[-cap:]
        first_index = (self.total + n - len(tail)) % cap
        head = min(len(tail), cap - first_index)
        self.data[first_index : first_index + head] = tail[:head]
        self.data[: len(tail) - head] = tail[head:]
        self.total += n

    def last(self, n: int) -> np.ndarray:
        """A copy of the last ``n`` samples (``n <= len(self)``), oldest first."""
        if n > len(self):
            raise ValueError(f"asked for {n} samples, {len(self)} held")
        return np.take(self.data, np.arange(self.total - n, self.total) % self.data.size)


def as_samples(chunk) -> np.ndarray:
    """A chunk as 1-D float32 samples: float arrays as they are, ``int16`` PCM scaled by 1/32768.

    Example
    -------
    >>> as_samples(np.array([16384, -32768], dtype=np.int16)).tolist()
    [0.5, -1.0]
    >>> as_samples(torch.ones(1, 3)).shape
    (3,)
    """
    if isinstance(chunk, torch.Tensor):
        chunk = chunk.detach().cpu().numpy()
    chunk = np.asarray(chunk)
    if chunk.ndim == 2 and 1 in chunk.shape:
        chunk = chunk.reshape(-1)
    if chunk.ndim != 1:
        raise ValueError(f"streams are mono: a chunk must be 1-D samples (or (1, n)), got shape {chunk.shape}")
    if chunk.dtype == np.int16:
        return chunk.astype(np.float32) / 32768.0
    return chunk.astype(np.float32, copy=False)


class WindowStream:
    """The windows to decide as samples arrive: :meth:`feed` each chunk, then :meth:`flush` at the end.

    Arguments
    ---------
    window, hop : float
        Seconds (rounded to whole samples).
    sample_rate : int
        Samples per second.

    Example
    -------
    >>> ws = WindowStream(window=1.0, hop=0.5, sample_rate=4)  # 4 samples a window, 2 a hop
    >>> [(s, e) for s, e, _ in ws.feed(np.arange(7))]  # two windows complete; the buffer holds 4 samples
    [(0, 4), (2, 6)]
    >>> [(s, e, w.tolist()) for s, e, w in ws.flush()]  # a partial hop left: the last window ends at the end
    [(3, 7, [3.0, 4.0, 5.0, 6.0])]
    """

    def __init__(self, window: float = 2.0, hop: float = 0.5, sample_rate: int = SAMPLE_RATE):
        self.window, self.hop = int(round(window * sample_rate)), int(round(hop * sample_rate))
        if self.window < 1 or self.hop < 1:
            raise ValueError(f"window and hop must be at least one sample, got {window} s and {hop} s")
        self.sample_rate = sample_rate
        self.buffer = RingBuffer(self.window)
        self.next_end = self.window  # the sample count at which the next regular window is complete
        self.last_end = 0  # end of the last window decided

    def feed(self, chunk) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, end, samples)`` (in samples) of every window the chunk completes, in order."""
        samples = as_samples(chunk)
        offset = 0
        while offset < len(samples):
            take = min(len(samples) - offset, self.next_end - self.buffer.total)  # up to the next window's end
            self.buffer.push(samples[offset : offset + take])
            offset += take
            if self.buffer.total == self.next_end:
                self.last_end = self.next_end
                self.next_end += self.hop
                yield self.last_end - self.window, self.last_end, self.buffer.last(self.window)

    def flush(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """The end-of-stream window: the last ``window`` samples, when any arrived after the last decision."""
        total = self.buffer.total
        shortest = min(self.window, int(round(MIN_SECONDS * self.sample_rate)))
        if total > self.last_end and total >= shortest:
            n = len(self.buffer)
            self.last_end = total
            yield total - n, total, self.buffer.last(n)


def stream_decisions(
    decide: Callable[[torch.Tensor], tuple[str | None, dict[str, float]]],
    chunks: Iterable,
    window: float = 2.0,
    hop: float = 0.5,
    clock: Callable[[int], float] | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[StreamDecision]:
    """Yield one :class:`StreamDecision` per hop (and one at the end of the stream) as chunks arrive.

    Arguments
    ---------
    decide : callable
        ``decide(wav)`` -> ``(label, probabilities)`` for one window ``(samples,)`` at ``sample_rate``.
    chunks : iterable
        Mono chunks of any size: float arrays or tensors, or ``int16`` PCM arrays.
    window, hop : float
        Seconds.
    clock : callable, optional
        ``clock(n)``: the :func:`time.perf_counter` time at which the stream's
        sample ``n`` was due (a live or paced source); default: when its chunk arrived.
    sample_rate : int
        Of the chunks.

    Returns
    -------
    iterator of StreamDecision
        In time order.

    Example
    -------
    >>> loudness = lambda wav: ("loud" if wav.abs().mean() > 0.5 else "quiet", {})
    >>> chunks = [np.zeros(3), np.ones(6), np.zeros(2)]
    >>> # windows end at 1.0, 1.5, 2.0, 2.5 s; the stream ends at 2.75 s, after a partial hop
    >>> for d in stream_decisions(loudness, chunks, 1.0, 0.5, sample_rate=4):
    ...     print(d.start, d.end, d.label, d.final)
    0.0 1.0 quiet False
    0.5 1.5 loud False
    1.0 2.0 loud False
    1.5 2.5 loud False
    1.75 2.75 quiet True
    """
    windows = WindowStream(window, hop, sample_rate)
    arrived = time.perf_counter()

    def decision(start: int, end: int, samples: np.ndarray, final: bool = False) -> StreamDecision:
        began = time.perf_counter()
        label, probabilities = decide(torch.from_numpy(samples))
        done = time.perf_counter()
        due = clock(end) if clock is not None else arrived
        return StreamDecision(
            start / sample_rate,
            end / sample_rate,
            label,
            probabilities,
            latency_ms=(done - due) * 1000.0,
            compute_ms=(done - began) * 1000.0,
            final=final,
        )

    for chunk in chunks:
        arrived = time.perf_counter()
        for start, end, samples in windows.feed(chunk):
            yield decision(start, end, samples)
    for start, end, samples in windows.flush():
        yield decision(start, end, samples, final=True)


class Pacer:
    """Releases chunks as a live source would, and is the stream's clock (``clock`` of :func:`stream_decisions`).

    A chunk is released when the clock reaches its last sample; the clock
    starts so that the first chunk is due on arrival (it was "recorded"
    before it arrived). A source that is already live (``arecord | ...``)
    is barely delayed: its chunks arrive when they are due.

    Example
    -------
    >>> pacer = Pacer(sample_rate=100)  # three chunks of 0.1 s: the first at once, then one every 0.1 s
    >>> began = time.perf_counter(); n = len(list(pacer([np.zeros(10)] * 3)))
    >>> n, 0.15 < time.perf_counter() - began < 1.0, round(pacer.clock(30) - pacer.clock(10), 6)
    (3, True, 0.2)
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        self.sample_rate, self.start = sample_rate, None

    def clock(self, sample: int) -> float:
        """When sample ``sample`` was due (:func:`time.perf_counter` seconds)."""
        return (self.start or time.perf_counter()) + sample / self.sample_rate

    def __call__(self, chunks: Iterable) -> Iterator:
        total = 0
        for chunk in chunks:
            total += len(as_samples(chunk))
            if self.start is None:
                self.start = time.perf_counter() - total / self.sample_rate
            delay = self.clock(total) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield chunk


def pcm_chunks(stream, block_seconds: float = 0.1, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Raw 16 kHz mono s16le PCM from a binary stream (stdin) as float32 chunks of up to ``block_seconds``.

    Whatever is available is passed on (``os.read`` on a pipe does not wait for a full block); an odd byte is
    kept for the next read.

    Example
    -------
    >>> import io
    >>> pcm = np.array([0, 16384, -16384], dtype="<i2").tobytes()
    >>> [c.tolist() for c in pcm_chunks(io.BytesIO(pcm), block_seconds=2 / 16000)]
    [[0.0, 0.5], [-0.5]]
    """
    size = max(2, 2 * int(round(block_seconds * sample_rate)))
    try:
        fd = stream.fileno()
    except (AttributeError, OSError):
        fd = None
    pending = b""
    while True:
        data = os.read(fd, size) if fd is not None else stream.read(size)
        if not data:
            break
        data = pending + data
        even = len(data) - len(data) % 2
        pending = data[even:]
        if even:
            yield as_samples(np.frombuffer(data[:even], dtype="<i2").astype(np.int16))


def file_chunks(path: str | os.PathLike, block_seconds: float = 0.1) -> Iterator[torch.Tensor]:
    """An audio file (any rate and channels) as 16 kHz mono chunks of ``block_seconds``, read one block at a time.

    A 16 kHz mono file gives its samples unchanged; other files are resampled block by block.
    """
    from speechbrain_ext.data.audio import iter_chunks

    for _, chunk in iter_chunks(path, block_seconds, SAMPLE_RATE):
        yield chunk
