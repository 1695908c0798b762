"""Pretrained-model interfaces, in the style of SpeechBrain's ``EncoderClassifier``."""

from __future__ import annotations

import os

import torch
from speechbrain.inference.interfaces import Pretrained

from speechbrain_ext.audio import TARGET_SAMPLE_RATE, load_audio


class EmotionClassifier(Pretrained):
    """SSL encoder + pooling + linear head, loaded with ``from_hparams``.

    ``classify_batch`` returns ``(out_prob, score, index, text_lab)`` exactly as
    :class:`speechbrain.inference.classifiers.EncoderClassifier`: log-posteriors,
    the best log-posterior, its index and its label. Files of any sample rate
    and channel count are resampled to 16 kHz mono.

    Example (with a model exported by ``python -m speechbrain_ext.hub export``)::

        model = EmotionClassifier.from_hparams(source="exported_model")
        out_prob, score, index, text_lab = model.classify_file("speech.wav")
    """

    MODULES_NEEDED = ["ssl", "classifier"]
    HPARAMS_NEEDED = ["pooling", "log_softmax", "label_encoder", "n_classes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams.label_encoder.expect_len(self.hparams.n_classes)

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings ``(batch, dim)`` of 16 kHz waveforms ``(batch, time)``."""
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0], device=self.device) if wav_lens is None else wav_lens.to(self.device)
        frames = self.mods.ssl(wavs, wav_lens)
        return self.hparams.pooling(frames, wav_lens)

    def classify_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None):
        """Classify a batch of 16 kHz waveforms.

        Returns
        -------
        out_prob : torch.Tensor
            ``(batch, n_classes)`` log-posteriors.
        score : torch.Tensor
            Best log-posterior per utterance.
        index : torch.Tensor
            Index of the best class.
        text_lab : list of str
            Label of the best class.
        """
        out_prob = self.hparams.log_softmax(self.mods.classifier(self.encode_batch(wavs, wav_lens)))
        score, index = torch.max(out_prob, dim=-1)
        text_lab = self.hparams.label_encoder.decode_torch(index)
        return out_prob, score, index, text_lab

    def classify_file(self, path: str | os.PathLike):
        """Classify one audio file (any sample rate, any channel count)."""
        wav = load_audio(path, TARGET_SAMPLE_RATE)
        return self.classify_batch(wav.unsqueeze(0), torch.ones(1))

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)
