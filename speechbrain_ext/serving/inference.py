"""Pretrained-model interfaces, in the style of SpeechBrain's ``EncoderClassifier``.

Both run the exported ``model`` (:mod:`speechbrain_ext.nn.models`): the module
the recipe trained and evaluated, built from the same YAML node, so a file
gets the answer the training-time evaluation gave it.

- :class:`EmotionClassifier`: ``classify_file`` / ``classify_batch`` return
  ``(out_prob, score, index, text_lab)`` exactly as ``EncoderClassifier``;
  ``classify_file(path, segments=True)`` gives a timeline of per-window
  labels; with a Bayesian head, ``n_samples=`` averages that many weight
  samples and :meth:`EmotionClassifier.uncertainty_file` reports entropy,
  mutual information and per-class spread.
- :class:`EmotionRegressor`: ``predict_file`` returns named intensities
  (Hume-Prosody style sigmoid outputs); with a Bayesian head,
  ``uncertainty_file`` adds each output's predictive standard deviation.

Text models and fused models with a text branch (compare2023) first
transcribe the file with the Whisper model packed in the exported folder,
with the decoding options of the training run; ``return_transcript=True``
returns the transcript with the decision.

Files of any sample rate and channel count are resampled to 16 kHz mono.
Recordings longer than ``max_chunk_seconds`` (default 30 s) are encoded one
chunk at a time (the encoder's memory is that of one chunk; each chunk's
context ends at its borders); the model's pooling and head then see the
frames of the whole file. Files up to one chunk give exactly the
``classify_batch`` result.

Many files: ``classify_files`` / ``predict_files`` read and resample them in
background workers, sort them by duration (from the file headers) and run
them in batches on the interface's device (``run_opts={"device": "cuda:0"}``
in ``from_hparams``). Batching is exact -- every file gets its one-by-one
answer to float rounding -- because of what :attr:`~speechbrain_ext.serving.model_interface.ModelInterface.batch_exact`
reads from the loaded model's own configuration:

- encoders whose convolutional feature extractor is layer-normed
  (``feat_extract_norm == "layer"``: wav2vec2-large/XLSR, HuBERT-large,
  WavLM-large) and that are given the attention mask
  (``SSLEncoder.use_attention_mask``) never see padding: files of any
  lengths share a batch;
- group-normed front ends (wav2vec2-base, HuBERT-base, WavLM-base+)
  normalise over time, padding included, so only files of the same length
  (in 16 kHz samples) share a batch; nothing is ever padded for them;
- models that read transcripts take one file at a time (the padded token
  batches of the text encoder are not claimed exact); files over one chunk
  always go one at a time, as ``classify_file`` reads them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from speechbrain_ext.data.audio import audio_frames
from speechbrain_ext.nn.models import ModelOutput, SegmentModel, UtteranceModel
from speechbrain_ext.nn.uncertainty import mc_predictive
from speechbrain_ext.serving.model_interface import ModelInterface


@dataclass
class Segment:
    """One entry of a timeline: where, which label, and the class probabilities."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]


class EmotionClassifier(ModelInterface):
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

    def _mc(self, embeddings: torch.Tensor, n_samples: int):
        return mc_predictive(self.model.head.sample(embeddings, n_samples))

    def _decide(self, out: ModelOutput, n_samples: int | None = None):
        out_prob = out.decision
        if n_samples and self.is_bayesian:
            out_prob = torch.log(self._mc(out.embeddings, n_samples).mean_probs.clamp_min(1e-12))
        knn = getattr(self.hparams, "knn", None)
        if (
            knn is not None
        ):  # an exported supcon_knn model: the tuned kNN interpolation (hub export --no-knn leaves it out)
            out_prob = knn(out_prob, out.embeddings)
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

    def classify_file(
        self,
        path: str | os.PathLike,
        segments: bool = False,
        n_samples: int | None = None,
        return_transcript: bool = False,
    ):
        """Classify one audio file (any sample rate, channel count and length).

        Arguments
        ---------
        path : str or PathLike
            Audio file.
        segments : bool
            Return a timeline (list of :class:`Segment`) instead of one decision (audio models).
        n_samples : int, optional
            Bayesian head: MC-average this many weight samples.
        return_transcript : bool
            Models that read text: also return the Whisper transcript the decision was made from.

        Returns
        -------
        tuple or list of Segment
            ``(out_prob, score, index, text_lab)`` for the whole file (plus
            the transcript with ``return_transcript``), or the timeline.
        """
        if segments:
            return self.timeline(path, n_samples=n_samples)
        decision = self._decide(self.forward_file(path), n_samples)
        return (*decision, self.last_transcript) if return_transcript else decision

    def classify_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 8,
        num_workers: int | None = None,
        n_samples: int | None = None,
        progress: bool = False,
    ) -> list:
        """Classify many files in batches: each entry is what :meth:`classify_file` returns for that file.

        Files are read and resampled in ``num_workers`` background processes
        (default :func:`~speechbrain_ext.serving.batches.default_num_workers`: 2 beside a GPU; on the CPU, the
        cores its threads leave free; 0 reads in this process), sorted by
        duration from their headers and batched on the interface's device.
        When :attr:`batch_exact`, files of any lengths share a padded batch;
        otherwise (group-norm encoders) only files of equal length do, so
        no file ever sees padding. Either way each file gets its one-by-one
        answer to float rounding. Models that read transcripts, and files
        longer than one chunk, go one at a time.

        Arguments
        ---------
        paths : sequence of str or PathLike
            Audio files (any rate, channels and length).
        batch_size : int
            Files per forward pass at most.
        num_workers : int, optional
            Background readers.
        n_samples : int, optional
            Bayesian head: MC-average this many weight samples (one draw set per batch).
        progress : bool
            A progress bar on stderr.

        Returns
        -------
        list
            In input order: ``(out_prob, score, index, text_lab)`` with a batch
            dimension of one, as :meth:`classify_file`; or, for a file that
            cannot be read, its :class:`~speechbrain_ext.data.audio.AudioLoadError`
            (the other files are still classified).
        """

        def finish(out: ModelOutput) -> list:
            out_prob, score, index, text_lab = self._decide(out, n_samples)
            return [
                (out_prob[k : k + 1], score[k : k + 1], index[k : k + 1], [text_lab[k]]) for k in range(len(out_prob))
            ]

        return self._run_files(paths, finish, batch_size, num_workers, progress)

    def timeline(self, path: str | os.PathLike, n_samples: int | None = None) -> list[Segment]:
        """Decisions over windows of a file, each window pooled by the model's own pooling and head.

        A segment model's own windows apply; otherwise windows of
        ``segment_seconds`` (2 s) every ``segment_hop_seconds`` (1 s). A last
        window aligned to the end covers the tail.
        """
        model = self.model
        if not isinstance(model, UtteranceModel):
            raise ValueError(f"a timeline needs an audio model; this one is a {type(model).__name__}")
        frame_rate = model.encoder.frame_rate
        if isinstance(model, SegmentModel):
            size, hop = model.segments.segment_size, model.segments.hop
        else:
            size = max(1, int(round(float(self._hparam("segment_seconds", 2.0)) * frame_rate)))
            hop = max(1, int(round(float(self._hparam("segment_hop_seconds", 1.0)) * frame_rate)))
        frames = self.file_frames(path)
        with torch.no_grad():
            starts, log_probs = model.window_scores(frames, size, hop)
            if n_samples and self.is_bayesian:
                embeddings = torch.stack(
                    [
                        model.pooling(frames[:, s : s + size], torch.ones(1, device=frames.device))[0]
                        for s in starts.tolist()
                    ]
                )
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


class EmotionRegressor(ModelInterface):
    """The exported regression model: emotion intensities in [0, 1], named by ``output_names``.

    Example::

        model = EmotionRegressor.from_hparams(source="exported_regressor")
        model.predict_file("clip.wav")  # {"Anger": 0.12, "Boredom": 0.40, ...}
    """

    HPARAMS_NEEDED = ["output_names"]

    def predict_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_outputs)`` intensities of 16 kHz waveforms."""
        return self.forward_batch(wavs, wav_lens).decision

    def predict_file(self, path: str | os.PathLike, return_transcript: bool = False):
        """Named intensities of one file (any rate, channels and length); with ``return_transcript``, also the transcript read."""
        values = self.forward_file(path).decision[0]
        named = {name: round(float(v), 6) for name, v in zip(self.hparams.output_names, values)}
        return (named, self.last_transcript) if return_transcript else named

    def predict_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 8,
        num_workers: int | None = None,
        progress: bool = False,
    ) -> list:
        """Named intensities of many files, batched as :meth:`EmotionClassifier.classify_files` (same exactness).

        Returns
        -------
        list
            In input order: :meth:`predict_file`'s dict, or the file's
            :class:`~speechbrain_ext.data.audio.AudioLoadError`.
        """

        def finish(out: ModelOutput) -> list:
            names = self.hparams.output_names
            return [{name: round(float(v), 6) for name, v in zip(names, row)} for row in out.decision]

        return self._run_files(paths, finish, batch_size, num_workers, progress)

    def uncertainty_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None, n_samples: int = 500) -> dict:
        """A Bayesian head's intensities: mean and standard deviation over ``n_samples`` weight draws, ``(batch, n_outputs)`` each."""
        self._require_bayesian()
        draws = self.model.activation(self.model.head.sample(self.encode_batch(wavs, wav_lens), n_samples))
        return {"mean": draws.mean(dim=0), "std": draws.std(dim=0)}

    def uncertainty_file(self, path: str | os.PathLike, n_samples: int = 500) -> dict[str, dict[str, float]]:
        """Named mean intensities and their predictive standard deviations for one file: ``{name: {"mean": m, "std": s}}``."""
        self._require_bayesian()
        draws = self.model.activation(self.model.head.sample(self.encode_file(path), n_samples))[:, 0]
        return {
            name: {"mean": round(float(m), 6), "std": round(float(sd), 6)}
            for name, m, sd in zip(self.hparams.output_names, draws.mean(0), draws.std(0))
        }

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens)


def interface_for(hparams_keys) -> type[ModelInterface]:
    """The interface class of an inference hparams file, from its top-level keys.

    Example
    -------
    >>> interface_for({"output_names": None}).__name__, interface_for({"label_encoder": None}).__name__
    ('EmotionRegressor', 'EmotionClassifier')
    """
    return EmotionRegressor if "output_names" in hparams_keys else EmotionClassifier


__all__ = ["EmotionClassifier", "EmotionRegressor", "Segment", "interface_for"]
