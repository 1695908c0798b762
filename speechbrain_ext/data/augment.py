"""Waveform augmentation for supervised contrastive fine-tuning (supcon_knn, Sec. 3.3.2).

The paper mixes noise, volume, reverberation and pitch. SpeechBrain's
``speechbrain.augment`` has the first three (``AddNoise``, ``RandAmp``,
``AddReverb``); :class:`PitchShift` adds the fourth. Noise and room impulse
responses come from :func:`generate_noise_and_rirs`, which synthesises them
locally (coloured noise; exponentially decaying noise tails for rooms of
random reverberation time), so nothing is downloaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from speechbrain_ext.utils.fileio import atomic_write_text

CSV_HEADER = "ID,duration,wav,wav_format,wav_opts"


class PitchShift(torch.nn.Module):
    """Shift the pitch of a batch by a random number of semitones, keeping its duration.

    A phase-vocoder time stretch by ``2**(s/12)`` followed by linear
    resampling back to the original length: fast enough to run on every
    training batch (torchaudio's ``pitch_shift`` resamples with exact rational
    kernels and takes seconds per batch).

    Arguments
    ---------
    min_semitones, max_semitones : float
        Range of the uniform random shift (one draw per batch).
    n_fft : int
        STFT size; the hop is a quarter of it.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> t = torch.arange(16000) / 16000
    >>> tone = torch.sin(2 * math.pi * 200 * t).unsqueeze(0)
    >>> shifted = PitchShift(12, 12)(tone)
    >>> spectrum = torch.fft.rfft(shifted[0, 2000:14000]).abs()
    >>> shifted.shape, round(float(spectrum.argmax()) * 16000 / 12000)
    (torch.Size([1, 16000]), 400)
    """

    def __init__(self, min_semitones: float = -3.0, max_semitones: float = 3.0, n_fft: int = 512):
        super().__init__()
        if min_semitones > max_semitones:
            raise ValueError(f"min_semitones {min_semitones} exceeds max_semitones {max_semitones}")
        self.min_semitones, self.max_semitones = float(min_semitones), float(max_semitones)
        self.n_fft, self.hop = n_fft, n_fft // 4

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Shift ``(batch, time)`` waveforms; the output has the input's shape."""
        semitones = self.min_semitones + (self.max_semitones - self.min_semitones) * float(torch.rand(()))
        rate = 2.0 ** (semitones / 12.0)
        if abs(rate - 1.0) < 1e-6:
            return waveforms
        length = waveforms.shape[-1]
        window = torch.hann_window(self.n_fft, device=waveforms.device)
        spec = torch.stft(waveforms, self.n_fft, self.hop, window=window, return_complex=True)
        phase_advance = torch.linspace(0, math.pi * self.hop, spec.shape[-2], device=waveforms.device)[..., None]
        stretched = torchaudio.functional.phase_vocoder(spec, 1.0 / rate, phase_advance)
        longer = torch.istft(stretched, self.n_fft, self.hop, window=window, length=int(round(length * rate)))
        return torch.nn.functional.interpolate(
            longer.unsqueeze(1), size=length, mode="linear", align_corners=False
        ).squeeze(1)


def _coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with a ``1/f**exponent`` power spectrum (0 white, 1 pink, 2 brown), unit peak."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n)
    return (noise / np.abs(noise).max()).astype(np.float32)


def _room_impulse_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A direct path plus a noise tail decaying 60 dB in ``rt60`` seconds."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    tail[: int(0.002 * sample_rate)] = 0.0  # a short gap before the first reflections
    tail[0] = 1.0
    return (tail / np.abs(tail).max()).astype(np.float32)


def _write_set(folder: Path, csv_path: Path, signals: list[tuple[str, np.ndarray]], sample_rate: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [CSV_HEADER]
    for name, signal in signals:
        path = folder / f"{name}.wav"
        tmp = path.with_name(path.name + ".tmp.wav")
        sf.write(tmp, signal, sample_rate, subtype="PCM_16")
        os.replace(tmp, path)
        rows.append(f"{name},{len(signal) / sample_rate:.4f},{path.resolve()},wav,")
    atomic_write_text(csv_path, "\n".join(rows) + "\n")


def generate_noise_and_rirs(
    folder: str | os.PathLike,
    sample_rate: int = 16000,
    n_noises: int = 24,
    n_rirs: int = 24,
    noise_seconds: float = 8.0,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write noise recordings and room impulse responses plus the CSV files ``AddNoise``/``AddReverb`` read.

    Skipped when both CSV files exist (same arguments, same files).

    Arguments
    ---------
    folder : str or PathLike
        Output folder (``noise/``, ``rir/``, ``noise.csv``, ``rir.csv``).
    sample_rate : int
        Sample rate of the written files (the recipes' 16 kHz).
    n_noises, n_rirs : int
        Number of files of each kind.
    noise_seconds : float
        Length of each noise file.
    seed : int
        Random seed.

    Returns
    -------
    noise_csv, rir_csv : Path

    Example
    -------
    >>> import tempfile
    >>> noise_csv, rir_csv = generate_noise_and_rirs(tempfile.mkdtemp(), n_noises=2, n_rirs=2, noise_seconds=1.0)
    >>> noise_csv.read_text().splitlines()[0], len(rir_csv.read_text().splitlines())
    ('ID,duration,wav,wav_format,wav_opts', 3)
    """
    folder = Path(folder)
    noise_csv, rir_csv = folder / "noise.csv", folder / "rir.csv"
    if noise_csv.is_file() and rir_csv.is_file():
        return noise_csv, rir_csv
    rng = np.random.default_rng(seed)
    noises = [
        (f"noise_{i:03d}", _coloured_noise(int(noise_seconds * sample_rate), [0.0, 1.0, 2.0][i % 3], rng))
        for i in range(n_noises)
    ]
    rirs = [
        (f"rir_{i:03d}", _room_impulse_response(float(rng.uniform(0.2, 0.9)), sample_rate, rng)) for i in range(n_rirs)
    ]
    _write_set(folder / "noise", noise_csv, noises, sample_rate)
    _write_set(folder / "rir", rir_csv, rirs, sample_rate)
    return noise_csv, rir_csv
