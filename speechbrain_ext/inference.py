"""Pretrained-model interfaces, in the style of SpeechBrain's ``EncoderClassifier``.

Both run the exported ``model`` (:mod:`speechbrain_ext.models`): the module
the recipe trained and evaluated, built from the same YAML node, so a file
gets the answer the training-time evaluation gave it.

- :class:`EmotionClassifier`: ``classify_file`` / ``classify_batch`` return
  ``(out_prob, score, index, text_lab)`` exactly as ``EncoderClassifier``;
  ``classify_file(path, segments=True)`` gives a timeline of per-window
  labels; with a Bayesian head, ``n_samples=`` averages that many weight
  samples and :meth:`EmotionClassifier.uncertainty_file` reports entropy,
  mutual information and per-class spread.
- :class:`EmotionRegressor`: ``predict_file`` returns named intensities
  (Hume-Prosody style sigmoid outputs).

Files of any sample rate and channel count are resampled to 16 kHz mono.
Recordings longer than ``max_chunk_seconds`` (default 30 s) are encoded one
chunk at a time (the encoder's memory is that of one chunk; each chunk's
context ends at its borders); the model's pooling and head then see the
frames of the whole file. Files up to one chunk give exactly the
``classify_batch`` result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from speechbrain.inference.interfaces import Pretrained

from speechbrain_ext.audio import TARGET_SAMPLE_RATE, audio_frames, iter_chunks, load_audio
from speechbrain_ext.bayesian import BayesianLinear
from speechbrain_ext.models import ModelOutput, SegmentModel
from speechbrain_ext.uncertainty import mc_predictive


@dataclass
class Segment:
    """One entry of a timeline: where, which label, and the class probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]


class _ModelInterface(Pretrained):
    """Running the exported model on batches and on files of any length."""

    MODULES_NEEDED = ["model"]

    def _hparam(self, name, default):
        return getattr(self.hparams, name, default)

    @property
    def model(self):
        """The exported :class:`~speechbrain_ext.models.UtteranceModel` (or ``SegmentModel``)."""
        return self.mods.model

    def forward_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> ModelOutput:
        """The model's output for a padded batch of 16 kHz waveforms ``(batch, time)`` with relative lengths."""
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0], device=self.device) if wav_lens is None else wav_lens.to(self.device)
        with torch.no_grad():
            return self.model(wavs, wav_lens)

    def file_frames(self, path: str | os.PathLike) -> torch.Tensor:
        """``(1, frames, dim)`` encoder frames of a file, encoded chunk by chunk past ``max_chunk_seconds``."""
        chunk_seconds = float(self._hparam("max_chunk_seconds", 30.0))
        frames_total, file_sr = audio_frames(path)
        with torch.no_grad():
            if frames_total / file_sr <= chunk_seconds:
                return self.model.encode(load_audio(path, TARGET_SAMPLE_RATE).unsqueeze(0).to(self.device), torch.ones(1, device=self.device))[0]
            parts = [
                self.model.encode(wav.unsqueeze(0).to(self.device), torch.ones(1, device=self.device))[0]
                for _, wav in iter_chunks(path, chunk_seconds, TARGET_SAMPLE_RATE)
            ]
        return torch.cat(parts, dim=1)

    def forward_file(self, path: str | os.PathLike) -> ModelOutput:
        """The model's output for one file (any rate, channels and length)."""
        with torch.no_grad():
            return self.model.from_frames(self.file_frames(path))

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings ``(batch, dim)`` (the head's input)."""
        return self.forward_batch(wavs, wav_lens).embeddings

    def encode_file(self, path: str | os.PathLike) -> torch.Tensor:
        """``(1, dim)`` embedding of a file."""
        return self.forward_file(path).embeddings


class EmotionClassifier(_ModelInterface):
    """The exported classification model, loaded with ``from_hparams`` or ``foreign_class``.

    ``classify_batch`` returns ``(out_prob, score, index, text_lab)`` exactly as
    :class:`speechbrain.inference.classifiers.EncoderClassifier`: log-posteriors,
    the best log-posterior, its index and its label.

    Example (with a model exported by ``python -m speechbrain_ext.hub export``)::

        model = EmotionClassifier.from_hparams(source="exported_model")
        out_prob, score, index, text_lab = model.classify_file("speech.wav")
        timeline = model.classify_file("call.wav", segments=True)
    """

    HPARAMS_NEEDED = ["label_encoder", "n_classes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams.label_encoder.expect_len(self.hparams.n_classes)

    @property
    def labels(self) -> list[str]:
        """Class labels in index order."""
        encoder = self.hparams.label_encoder
        return [encoder.ind2lab[i] for i in range(len(encoder))]

    @property
    def is_bayesian(self) -> bool:
        """True when the head is a :class:`BayesianLinear`."""
        return isinstance(self.model.head, BayesianLinear)

    def _require_bayesian(self) -> None:
        if not self.is_bayesian:
            raise ValueError("uncertainty needs a Bayesian head (a run of a bayes.yaml recipe); this model's head is deterministic")

    def _mc(self, embeddings: torch.Tensor, n_samples: int):
        head = self.model.head
        mean_mode, head.mean_weights = head.mean_weights, False
        try:
            with torch.no_grad():
                return mc_predictive(head(embeddings, n_samples=int(n_samples)))
        finally:
            head.mean_weights = mean_mode

    def _decide(self, out: ModelOutput, n_samples: int | None = None):
        out_prob = out.decision
        if n_samples and self.is_bayesian:
            out_prob = torch.log(self._mc(out.embeddings, n_samples).mean_probs.clamp_min(1e-12))
        score, index = torch.max(out_prob, dim=-1)
        return out_prob, score, index, self.hparams.label_encoder.decode_torch(index)

    def classify_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None, n_samples: int | None = None):
        """Classify a batch of 16 kHz waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, time)``.
        wav_lens : torch.Tensor, optional
            Relative lengths.
        n_samples : int, optional
            Bayesian head only: average this many weight samples (compare2023 uses 500).

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
        return self._decide(self.forward_batch(wavs, wav_lens), n_samples)

    def classify_file(self, path: str | os.PathLike, segments: bool = False, n_samples: int | None = None):
        """Classify one audio file (any sample rate, channel count and length).

        Arguments
        ---------
        path : str or PathLike
            Audio file.
        segments : bool
            Return a timeline (list of :class:`Segment`) instead of one decision.
        n_samples : int, optional
            Bayesian head: MC-average this many weight samples.

        Returns
        -------
        tuple or list of Segment
            ``(out_prob, score, index, text_lab)`` for the whole file, or the timeline.
        """
        if segments:
            return self.timeline(path, n_samples=n_samples)
        return self._decide(self.forward_file(path), n_samples)

    def timeline(self, path: str | os.PathLike, n_samples: int | None = None) -> list[Segment]:
        """Decisions over windows of a file, each window pooled by the model's own pooling and head.

        A segment model's own windows apply; otherwise windows of
        ``segment_seconds`` (2 s) every ``segment_hop_seconds`` (1 s). A last
        window aligned to the end covers the tail.
        """
        model, frame_rate = self.model, self.model.encoder.frame_rate
        if isinstance(model, SegmentModel):
            size, hop = model.segments.segment_size, model.segments.hop
        else:
            size = max(1, int(round(float(self._hparam("segment_seconds", 2.0)) * frame_rate)))
            hop = max(1, int(round(float(self._hparam("segment_hop_seconds", 1.0)) * frame_rate)))
        frames = self.file_frames(path)
        with torch.no_grad():
            starts, log_probs = model.window_scores(frames, size, hop)
            if n_samples and self.is_bayesian:
                embeddings = torch.stack([model.pooling(frames[:, s : s + size], torch.ones(1, device=frames.device))[0] for s in starts.tolist()])
                log_probs = torch.log(self._mc(embeddings, n_samples).mean_probs.clamp_min(1e-12))
        frames_total, file_sr = audio_frames(path)
        duration, labels, n_frames = frames_total / file_sr, self.labels, frames.shape[1]
        out = []
        for start, lp in zip(starts.tolist(), log_probs):
            probs = [round(p, 6) for p in lp.exp().tolist()]
            out.append(
                Segment(
                    round(start / frame_rate, 3),
                    round(min(duration, min(start + size, n_frames) / frame_rate), 3),
                    labels[int(lp.argmax())],
                    dict(zip(labels, probs)),
                )
            )
        return out

    def uncertainty_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None, n_samples: int = 500) -> dict:
        """MC predictive summary of a Bayesian head: mean probabilities, std, entropy, mutual information.

        Returns
        -------
        dict
            ``mean_probs``, ``std_probs`` ``(batch, n_classes)``; ``entropy``,
            ``mutual_information``, ``confidence`` ``(batch,)``; ``labels`` (predicted).
        """
        self._require_bayesian()
        return self._summary(self._mc(self.encode_batch(wavs, wav_lens), n_samples))

    def uncertainty_file(self, path: str | os.PathLike, n_samples: int = 500) -> dict:
        """:meth:`uncertainty_batch` for one file of any length."""
        self._require_bayesian()
        return self._summary(self._mc(self.encode_file(path), n_samples))

    def _summary(self, pred) -> dict:
        index = pred.mean_probs.argmax(dim=-1)
        return {
            "mean_probs": pred.mean_probs,
            "std_probs": pred.std_probs,
            "entropy": pred.entropy,
            "mutual_information": pred.mutual_information,
            "confidence": pred.confidence,
            "labels": self.hparams.label_encoder.decode_torch(index),
        }

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)


class EmotionRegressor(_ModelInterface):
    """The exported regression model: emotion intensities in [0, 1], named by ``output_names``.

    Example::

        model = EmotionRegressor.from_hparams(source="exported_regressor")
        model.predict_file("clip.wav")  # {"Anger": 0.12, "Boredom": 0.40, ...}
    """

    HPARAMS_NEEDED = ["output_names"]

    def predict_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_outputs)`` intensities of 16 kHz waveforms."""
        return self.forward_batch(wavs, wav_lens).decision

    def predict_file(self, path: str | os.PathLike) -> dict[str, float]:
        """Named intensities of one file (any rate, channels and length)."""
        values = self.forward_file(path).decision[0]
        return {name: round(float(v), 6) for name, v in zip(self.hparams.output_names, values)}

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens)


def interface_for(hparams_keys) -> type[_ModelInterface]:
    """The interface class of an inference hparams file, from its top-level keys.

    Example
    -------
    >>> interface_for({"output_names": None}).__name__, interface_for({"label_encoder": None}).__name__
    ('EmotionRegressor', 'EmotionClassifier')
    """
    return EmotionRegressor if "output_names" in hparams_keys else EmotionClassifier


__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment", "interface_for"]
