"""Masked mean pooling against a loop; audio loading across rates, channels and bad files."""

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.data.audio import AudioLoadError, load_audio
from speechbrain_ext.nn.pooling import MaskedMeanPooling


def test_masked_mean_matches_loop():
    torch.manual_seed(0)
    frames = torch.randn(5, 37, 8)
    lengths = torch.tensor([1.0, 0.5, 0.31, 0.02, 0.8])
    pooled = MaskedMeanPooling()(frames, lengths)
    for i in range(5):
        n = max(1, int(torch.round(lengths[i] * 37)))
        torch.testing.assert_close(pooled[i], frames[i, :n].mean(dim=0))


def test_padding_does_not_change_the_embedding():
    torch.manual_seed(0)
    frames = torch.randn(1, 10, 4)
    padded = torch.cat([frames, 100 * torch.ones(1, 30, 4)], dim=1)
    pool = MaskedMeanPooling()
    torch.testing.assert_close(pool(frames, torch.tensor([1.0])), pool(padded, torch.tensor([0.25])))


def test_stereo_48k_equals_mono_16k(tmp_path):
    t = np.arange(48000) / 48000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    soundfile.write(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 48000)
    t16 = np.arange(16000) / 16000
    soundfile.write(tmp_path / "mono.wav", 0.3 * np.sin(2 * np.pi * 220 * t16), 16000, subtype="FLOAT")
    a, b = load_audio(tmp_path / "stereo.wav"), load_audio(tmp_path / "mono.wav")
    assert a.shape == b.shape == (16000,)
    # resampling tolerance, away from the filter's edge effects
    assert torch.max(torch.abs(a[200:-200] - b[200:-200])) < 2e-3


@pytest.mark.parametrize(
    "content, message",
    [(None, "file not found"), (b"", "empty file"), (b"RIFF\x00\x00not really a wav file" * 10, "cannot be decoded")],
)
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioLoadError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    soundfile.write(path, np.zeros(0), 16000)
    with pytest.raises(AudioLoadError, match="no audio samples"):
        load_audio(path)
