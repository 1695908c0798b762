"""Pretrained-model interfaces, in the style of SpeechBrain's ``EncoderClassifier``.

- :class:`EmotionClassifier`: ``classify_file`` / ``classify_batch`` return
  ``(out_prob, score, index, text_lab)`` exactly as ``EncoderClassifier``;
  ``classify_file(path, segments=True)`` gives a timeline of per-segment
  labels; with a Bayesian head, ``n_samples=`` averages that many weight
  samples and :meth:`EmotionClassifier.uncertainty_file` reports entropy,
  mutual information and per-class spread.
- :class:`EmotionRegressor`: ``predict_file`` returns named intensities
  (Hume-Prosody style sigmoid outputs).

Files of any sample rate and channel count are resampled to 16 kHz mono.
Recordings longer than ``max_chunk_seconds`` (default 30 s) are read and
encoded one chunk at a time, so peak memory does not grow with duration;
mean pooling then averages the frames of all chunks (each chunk's encoder
context ends at its borders), and files up to one chunk give exactly the
``classify_batch`` result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from speechbrain.inference.interfaces import Pretrained

from speechbrain_ext.audio import TARGET_SAMPLE_RATE, audio_frames, iter_chunks, load_audio
from speechbrain_ext.bayesian import BayesianLinear
from speechbrain_ext.pooling import MaskedMeanPooling, SegmentPooling, segment_decision
from speechbrain_ext.uncertainty import mc_predictive

FRAME_RATE = 50.0  # SSL frames per second (20 ms stride of the wav2vec2 family)


@dataclass
class Segment:
    """One entry of a timeline: where, which label, and the class probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]


class _SSLInterface(Pretrained):
    """Encoding shared by the classifier and the regressor: SSL frames, chunking, pooling."""

    def _hparam(self, name, default):
        return getattr(self.hparams, name, default)

    def _frames(self, wavs: torch.Tensor, wav_lens: torch.Tensor):
        """``(frames, frame_lens)`` for either SpeechBrain's HF lobes or :class:`SSLEncoder`."""
        out = self.mods.ssl(wavs, wav_lens)
        return out if isinstance(out, tuple) else (out, wav_lens)

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embeddings ``(batch, dim)`` of 16 kHz waveforms ``(batch, time)``."""
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0], device=self.device) if wav_lens is None else wav_lens.to(self.device)
        with torch.no_grad():
            frames, frame_lens = self._frames(wavs, wav_lens)
            return self.hparams.pooling(frames, frame_lens)

    def _chunks(self, path):
        """Yield ``(start_seconds, frames (1, T, D))`` chunk by chunk."""
        chunk_seconds = float(self._hparam("max_chunk_seconds", 30.0))
        for start, wav in iter_chunks(path, chunk_seconds, TARGET_SAMPLE_RATE):
            with torch.no_grad():
                frames, _ = self._frames(wav.unsqueeze(0).to(self.device), torch.ones(1, device=self.device))
            yield start, frames

    def encode_file(self, path: str | os.PathLike) -> torch.Tensor:
        """``(1, dim)`` embedding of a file of any length (chunked past ``max_chunk_seconds``)."""
        frames_total, file_sr = audio_frames(path)
        if frames_total / file_sr <= float(self._hparam("max_chunk_seconds", 30.0)):
            return self.encode_batch(load_audio(path, TARGET_SAMPLE_RATE).unsqueeze(0), torch.ones(1))
        pooling = self.hparams.pooling
        total, count = None, 0
        for _, frames in self._chunks(path):
            if isinstance(pooling, MaskedMeanPooling):
                part, n = frames.sum(dim=1), frames.shape[1]  # exact mean over all frames
            else:
                part, n = pooling(frames, None) * frames.shape[1], frames.shape[1]  # frame-weighted chunk average
            total = part if total is None else total + part
            count += n
        return total / count


class EmotionClassifier(_SSLInterface):
    """SSL encoder + pooling + (linear or Bayesian) head, loaded with ``from_hparams``.

    ``classify_batch`` returns ``(out_prob, score, index, text_lab)`` exactly as
    :class:`speechbrain.inference.classifiers.EncoderClassifier`: log-posteriors,
    the best log-posterior, its index and its label.

    Example (with a model exported by ``python -m speechbrain_ext.hub export``)::

        model = EmotionClassifier.from_hparams(source="exported_model")
        out_prob, score, index, text_lab = model.classify_file("speech.wav")
        timeline = model.classify_file("call.wav", segments=True)
    """

    MODULES_NEEDED = ["ssl", "classifier"]
    HPARAMS_NEEDED = ["pooling", "log_softmax", "label_encoder", "n_classes"]

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
        return isinstance(self.mods.classifier, BayesianLinear)

    def _head_log_probs(self, embeddings: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
        """Log-posteriors; with a Bayesian head and ``n_samples``, of the MC-mean probabilities."""
        with torch.no_grad():
            if n_samples and self.is_bayesian:
                return torch.log(self._mc(embeddings, n_samples).mean_probs.clamp_min(1e-12))
            return self.hparams.log_softmax(self.mods.classifier(embeddings))

    def _require_bayesian(self) -> None:
        if not self.is_bayesian:
            raise ValueError("uncertainty needs a Bayesian head (pretrained_hparams/emotion_ssl_bayes.yaml); this model's head is deterministic")

    def _mc(self, embeddings: torch.Tensor, n_samples: int):
        head = self.mods.classifier
        mean_mode, head.mean_weights = head.mean_weights, False
        try:
            return mc_predictive(head(embeddings, n_samples=int(n_samples)))
        finally:
            head.mean_weights = mean_mode

    def _segment_log_probs(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None) -> torch.Tensor:
        """Segment-family models: utterance log-posteriors from per-segment ones (segment_triplet)."""
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0], device=self.device) if wav_lens is None else wav_lens.to(self.device)
        with torch.no_grad():
            frames, frame_lens = self._frames(wavs, wav_lens)
            segments, mask = self.hparams.pooling(frames, frame_lens)
            log_probs = self.hparams.log_softmax(self.mods.classifier(segments))
        return segment_decision(log_probs, mask, self._hparam("segment_decision", "most_confident"))

    def _decide(self, out_prob: torch.Tensor):
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
        if isinstance(self.hparams.pooling, SegmentPooling):
            return self._decide(self._segment_log_probs(wavs, wav_lens))
        return self._decide(self._head_log_probs(self.encode_batch(wavs, wav_lens), n_samples))

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
        if isinstance(self.hparams.pooling, SegmentPooling):
            # Segments of every chunk, then one decision as for a batch (segment_decision hparam).
            parts = []
            for _start, frames in self._chunks(path):
                seg, mask = self.hparams.pooling(frames, None)
                with torch.no_grad():
                    parts.append(self.hparams.log_softmax(self.mods.classifier(seg[mask])))
            log_probs = torch.cat(parts).unsqueeze(0)
            mask = torch.ones(log_probs.shape[:2], dtype=torch.bool, device=log_probs.device)
            return self._decide(segment_decision(log_probs, mask, self._hparam("segment_decision", "most_confident")))
        return self._decide(self._head_log_probs(self.encode_file(path), n_samples))

    def timeline(self, path: str | os.PathLike, n_samples: int | None = None) -> list[Segment]:
        """Per-segment decisions over a file: windows of ``segment_seconds`` every ``segment_hop_seconds``.

        The model's own segment sizes apply when its pooling is
        :class:`SegmentPooling`; otherwise 2 s windows every 1 s (hparams
        ``segment_seconds``/``segment_hop_seconds`` override). Each window's
        mean embedding goes through the classification head.
        """
        pooling = self.hparams.pooling
        if isinstance(pooling, SegmentPooling):
            size, hop = pooling.segment_size, pooling.hop
        else:
            size = max(1, int(round(float(self._hparam("segment_seconds", 2.0)) * FRAME_RATE)))
            hop = max(1, int(round(float(self._hparam("segment_hop_seconds", 1.0)) * FRAME_RATE)))
        windows = SegmentPooling(size, hop)
        frames_total, file_sr = audio_frames(path)
        duration = frames_total / file_sr
        labels = self.labels
        out = []
        for start, frames in self._chunks(path):
            segments, mask = windows(frames, None)
            log_probs = self._head_log_probs(segments[mask], n_samples)
            n_frames = frames.shape[1]
            for w, lp in enumerate(log_probs):
                seg_start = start + w * hop / FRAME_RATE
                seg_end = min(duration, start + min(w * hop + size, n_frames) / FRAME_RATE)
                probs = lp.exp().tolist()
                out.append(Segment(round(seg_start, 3), round(seg_end, 3), labels[int(lp.argmax())], dict(zip(labels, [round(p, 6) for p in probs]))))
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


class EmotionRegressor(_SSLInterface):
    """SSL encoder + pooling + linear head + sigmoid: emotion intensities in [0, 1].

    The inference hparams name the outputs (``output_names``, e.g. the nine
    Hume-Prosody emotions).

    Example::

        model = EmotionRegressor.from_hparams(source="exported_regressor")
        model.predict_file("clip.wav")  # {"Anger": 0.12, "Boredom": 0.40, ...}
    """

    MODULES_NEEDED = ["ssl", "regressor"]
    HPARAMS_NEEDED = ["pooling", "output_names"]

    def predict_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_outputs)`` intensities of 16 kHz waveforms."""
        with torch.no_grad():
            return torch.sigmoid(self.mods.regressor(self.encode_batch(wavs, wav_lens)))

    def predict_file(self, path: str | os.PathLike) -> dict[str, float]:
        """Named intensities of one file (any rate, channels and length)."""
        with torch.no_grad():
            values = torch.sigmoid(self.mods.regressor(self.encode_file(path)))[0]
        return {name: round(float(v), 6) for name, v in zip(self.hparams.output_names, values)}

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens)


def interface_for(hparams_keys) -> type[_SSLInterface]:
    """The interface class of an inference hparams file, from its top-level keys.

    Example
    -------
    >>> interface_for({"regressor": None}).__name__, interface_for({"classifier": None}).__name__
    ('EmotionRegressor', 'EmotionClassifier')
    """
    return EmotionRegressor if "regressor" in hparams_keys else EmotionClassifier


__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment", "interface_for"]
