"""Audio loading for training and inference: any rate and channel count in,
16 kHz mono float32 out, with errors that name the file.

Audio I/O goes through ``soundfile`` (torchaudio's loaders need extra codecs
that a fresh machine lacks).
"""

from __future__ import annotations

import functools
import os

import soundfile
import torch
import torchaudio.functional

TARGET_SAMPLE_RATE = 16000


class AudioLoadError(RuntimeError):
    """An audio file cannot be used; the message names the file and the problem."""


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int) -> torchaudio.transforms.Resample:
    # Building the windowed-sinc kernel costs more than applying it: keep one per rate pair.
    return torchaudio.transforms.Resample(orig_sr, new_sr)


def resample(signal: torch.Tensor, orig_sr: int, new_sr: int = TARGET_SAMPLE_RATE) -> torch.Tensor:
    """Resample a ``(..., time)`` signal, reusing a cached kernel per rate pair.

    Example
    -------
    >>> resample(torch.zeros(48000), 48000).shape
    torch.Size([16000])
    """
    if orig_sr == new_sr:
        return signal
    return _resampler(int(orig_sr), int(new_sr))(signal)


def _checked(path: str | os.PathLike) -> str:
    """The path as a string, after the missing and empty-file checks."""
    path = str(path)
    if not os.path.isfile(path):
        raise AudioLoadError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise AudioLoadError(f"{path}: empty file (0 bytes)")
    return path


def load_audio(
    path: str | os.PathLike, sample_rate: int = TARGET_SAMPLE_RATE, start: int = 0, stop: int | None = None
) -> torch.Tensor:
    """Read an audio file as a mono float32 tensor at ``sample_rate``.

    Channels are averaged; the signal is resampled when the file's rate differs.

    Arguments
    ---------
    path : str or PathLike
        Any format ``soundfile`` reads (wav, flac, ogg, ...).
    sample_rate : int
        Output rate (16 kHz for the SSL encoders).
    start, stop : int
        Optional frame range in the file's own rate (for chunked reading).

    Returns
    -------
    torch.Tensor
        Shape ``(time,)``.

    Raises
    ------
    AudioLoadError
        Missing, undecodable or empty file.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "stereo48k.wav")
    >>> soundfile.write(path, numpy.zeros((48000, 2)), 48000)
    >>> load_audio(path).shape
    torch.Size([16000])
    """
    path = _checked(path)
    try:
        data, file_sr = soundfile.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for bad headers
        raise AudioLoadError(f"{path}: cannot be decoded as audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioLoadError(f"{path}: holds no audio samples")
    signal = torch.from_numpy(data).mean(dim=1)
    return resample(signal, file_sr, sample_rate)


def audio_frames(path: str | os.PathLike) -> tuple[int, int]:
    """``(frames, sample_rate)`` of a file from its header, with the same errors as :func:`load_audio`.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, numpy.zeros(24000), 48000)
    >>> audio_frames(path)
    (24000, 48000)
    """
    path = _checked(path)
    try:
        info = soundfile.info(path)
    except Exception as err:
        raise AudioLoadError(f"{path}: cannot be decoded as audio ({err})") from err
    if info.frames <= 0:
        raise AudioLoadError(f"{path}: holds no audio samples")
    return int(info.frames), int(info.samplerate)


def iter_chunks(path: str | os.PathLike, chunk_seconds: float, sample_rate: int = TARGET_SAMPLE_RATE):
    """Yield ``(start_seconds, mono chunk at sample_rate)`` reading one chunk at a time.

    Only one chunk is in memory at once, whatever the file's length.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, numpy.zeros(50000), 16000)
    >>> [(start, len(chunk)) for start, chunk in iter_chunks(path, 1.5)]
    [(0.0, 24000), (1.5, 24000), (3.0, 2000)]
    """
    frames, file_sr = audio_frames(path)
    step = max(1, int(round(chunk_seconds * file_sr)))
    for start in range(0, frames, step):
        yield start / file_sr, load_audio(path, sample_rate, start=start, stop=min(frames, start + step))
