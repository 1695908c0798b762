"""Pretrained-model interfaces, in the style of SpeechBrain's ``EncoderClassifier``.

Both run the exported ``model`` (:mod:`speechbrain_ext.nn.models`): the module
the recipe trained and evaluated, built from the same YAML node, so a file
gets the answer the training-time evaluation gave it.

- :class:`EmotionClassifier`: ``classify_file`` / ``classify_batch`` return
  ``(out_prob, score, index, text_lab)`` exactly as ``EncoderClassifier``;
  ``classify_file(path, segments=True)`` gives a timeline of per-window
  labels; ``stream(chunks, window, hop)`` decides every hop on a live
  stream (:mod:`speechbrain_ext.serving.streaming`); with a Bayesian head,
  ``n_samples=`` averages that many weight samples and
  :meth:`EmotionClassifier.uncertainty_file` reports entropy, mutual
  information and per-class spread.
  A model exported from a calibrated run (``calibration.ckpt``,
  :mod:`speechbrain_ext.serving.calibration`) also answers with a
  split-conformal prediction set (``prediction_set=True``), abstains
  (``abstain=alpha``: label ``None`` when the set is not a singleton) and
  flags out-of-distribution inputs; probabilities are then temperature-scaled.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from speechbrain_ext.data.audio import audio_frames
from speechbrain_ext.nn.models import ModelOutput, SegmentModel, UtteranceModel
from speechbrain_ext.nn.uncertainty import mc_predictive
from speechbrain_ext.serving.calibration import (
    ModelCalibration,
    PredictionSet,
    calibrated_decision,
    require_calibration,
)
from speechbrain_ext.serving.model_interface import ModelInterface
from speechbrain_ext.serving.regressor import EmotionRegressor


@dataclass
class Segment:
    """One entry of a timeline: where, which label, and the class probabilities."""

    start: float
    end: float
    label: str | None  # None: abstained (the window's set at ``abstain`` is not a singleton)
    probabilities: dict[str, float]
    prediction_set: list[str] | None = None  # calibrated models asked for sets: labels by decreasing probability


class EmotionClassifier(ModelInterface):
    """The exported classification model, loaded with ``from_hparams`` or ``foreign_class``.

    ``classify_batch`` returns ``(out_prob, score, index, text_lab)`` exactly as
    :class:`speechbrain.inference.classifiers.EncoderClassifier`: log-posteriors,
    the best log-posterior, its index and its label.

    Example (with a model exported by ``python -m speechbrain_ext.hub export``)::

        model = EmotionClassifier.from_hparams(source="exported_model")
        out_prob, score, index, text_lab = model.classify_file("speech.wav")
        timeline = model.classify_file("call.wav", segments=True)
        *answer, sets = model.classify_file("speech.wav", prediction_set=True)  # sets[0].labels
        out_prob, score, index, text_lab, sets = model.classify_file("speech.wav", abstain=0.1)  # text_lab[0] None: unsure
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

    @property
    def calibration(self) -> ModelCalibration | None:
        """The run's calibration (``calibration.ckpt``: temperature, conformal scores, OOD thresholds), or None."""
        return getattr(self.hparams, "calibration", None)

    def _decide(
        self,
        out: ModelOutput,
        n_samples: int | None = None,
        prediction_set: bool = False,
        abstain: float | None = None,
        alpha: float | None = None,
        calibrated: bool | None = None,
    ):
        require_calibration(self.calibration, prediction_set, abstain)
        cal = self.calibration if prediction_set or abstain is not None or calibrated else None
        out_prob, mc = out.decision, None
        if n_samples and self.is_bayesian:
            mc = self._mc(out.embeddings, n_samples)
            out_prob = torch.log(mc.mean_probs.clamp_min(1e-12))
        knn = getattr(self.hparams, "knn", None)
        if (
            knn is not None
        ):  # an exported supcon_knn model: the tuned kNN interpolation (hub export --no-knn leaves it out)
            out_prob = knn(out_prob, out.embeddings)
        if cal is None:
            score, index = torch.max(out_prob, dim=-1)
            return out_prob, score, index, self.hparams.label_encoder.decode_torch(index)
        scores = {}
        if (prediction_set or abstain is not None) and knn is not None and cal.ood("knn_distance"):
            queries = out.embeddings.detach().float().cpu()
            scores["knn_distance"] = knn.interpolator.neighbours(queries, cal.ood("knn_distance")["k"])[0][:, -1]
        if mc is not None and cal.ood("mutual_information"):
            scores["mutual_information"] = mc.mutual_information.detach().float().cpu()
        entry = "knn" if knn is not None and cal.has_entry("knn") else "run"
        options = {"prediction_set": prediction_set, "abstain": abstain, "alpha": alpha, "calibrated": calibrated}
        return calibrated_decision(cal, out_prob, self.labels, entry, ood_scores=scores, **options)

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
        prediction_set: bool = False,
        abstain: float | None = None,
        alpha: float | None = None,
        calibrated: bool | None = None,
    ):
        """Classify one audio file (any sample rate, channel count and length).

        Without ``prediction_set``, ``abstain`` or ``calibrated`` the answer is
        the run's own (the probabilities its evaluation saved). With them the
        model must carry its run's calibration (``calibration.ckpt``):
        probabilities are temperature-scaled (``p = softmax(log p / T)``,
        ``T`` fitted on validation; the ranking is unchanged) and the
        split-conformal set at ``alpha`` holds the true label with
        probability ``>= 1 - alpha`` on data exchangeable with the
        validation split (``qhat`` at any ``alpha`` from the run's stored
        validation scores).

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
        prediction_set : bool
            Also return the conformal prediction set (at ``alpha``).
        abstain : float, optional
            Answer ``None`` as the label ("unsure") when the set at this
            ``alpha`` is not a singleton (empty or several labels); the set is returned too.
        alpha : float, optional
            Miscoverage of ``prediction_set`` (default: the run's, e.g. 0.1).
        calibrated : bool, optional
            Temperature-scale ``out_prob`` (default: only with ``prediction_set``/``abstain``;
            ``False`` keeps the raw ``out_prob`` beside the sets).

        Returns
        -------
        tuple or list of Segment
            ``(out_prob, score, index, text_lab)`` for the whole file, then
            with ``prediction_set``/``abstain`` a list of one
            :class:`~speechbrain_ext.serving.calibration.PredictionSet`
            (labels by decreasing probability, ``alpha``, ``ood`` flags:
            ``knn_distance`` with a kNN datastore, ``mutual_information``
            with ``n_samples`` of a Bayesian head), then the transcript with
            ``return_transcript``; or the timeline (each segment with its set).
        """
        options = {"prediction_set": prediction_set, "abstain": abstain, "alpha": alpha, "calibrated": calibrated}
        if segments:
            return self.timeline(path, n_samples=n_samples, **options)
        decision = self._decide(self.forward_file(path), n_samples, **options)
        return (*decision, self.last_transcript) if return_transcript else decision

    def classify_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 8,
        num_workers: int | None = None,
        n_samples: int | None = None,
        progress: bool = False,
        prediction_set: bool = False,
        abstain: float | None = None,
        alpha: float | None = None,
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
        prediction_set, abstain, alpha : optional
            As :meth:`classify_file` (each file's answer then ends with its set).

        Returns
        -------
        list
            In input order: ``(out_prob, score, index, text_lab)`` with a batch
            dimension of one (and ``[set]``), as :meth:`classify_file`; or, for a file that
            cannot be read, its :class:`~speechbrain_ext.data.audio.AudioLoadError`
            (the other files are still classified).
        """

        options = {"prediction_set": prediction_set, "abstain": abstain, "alpha": alpha}
        require_calibration(self.calibration, prediction_set, abstain)  # refused before any file is read

        def finish(out: ModelOutput) -> list:
            out_prob, score, index, text_lab, *sets = self._decide(out, n_samples, **options)
            return [
                (out_prob[k : k + 1], score[k : k + 1], index[k : k + 1], [text_lab[k]], *(s[k : k + 1] for s in sets))
                for k in range(len(out_prob))
            ]

        return self._run_files(paths, finish, batch_size, num_workers, progress)

    def timeline(
        self,
        path: str | os.PathLike,
        n_samples: int | None = None,
        prediction_set: bool = False,
        abstain: float | None = None,
        alpha: float | None = None,
        calibrated: bool | None = None,
    ) -> list[Segment]:
        """Decisions over windows of a file, each window pooled by the model's own pooling and head.

        A segment model's own windows apply; otherwise windows of
        ``segment_seconds`` (2 s) every ``segment_hop_seconds`` (1 s). A last
        window aligned to the end covers the tail. With ``prediction_set`` or
        ``abstain`` (a calibrated model) each segment carries its set, from the
        temperature-scaled probabilities of the model's ``run`` entry (windows
        skip the kNN interpolation); the guarantee was fitted on whole
        utterances, so for windows it is an approximation.
        """
        require_calibration(self.calibration, prediction_set, abstain)  # refused before the file is encoded
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
        options = {"prediction_set": prediction_set, "abstain": abstain, "alpha": alpha, "calibrated": calibrated}
        log_probs, _, _, window_labels, *answered = calibrated_decision(self.calibration, log_probs, labels, **options)
        sets = [s.labels for s in answered[0]] if answered else [None] * len(log_probs)
        out = []
        for start, lp, label, members in zip(starts.tolist(), log_probs, window_labels, sets):
            probs = [round(p, 6) for p in lp.exp().tolist()]
            out.append(
                Segment(
                    round(start / frame_rate, 3),
                    round(min(duration, min(start + size, n_frames) / frame_rate), 3),
                    label,
                    dict(zip(labels, probs)),
                    members,
                )
            )
        return out

    def stream(self, chunks: Iterable, window: float = 2.0, hop: float = 0.5, n_samples: int | None = None, clock=None):
        """Classify a live 16 kHz mono stream: one :class:`~speechbrain_ext.serving.streaming.StreamDecision` per hop.

        Each decision is ``classify_batch`` (so ``classify_file``) on the last ``window`` seconds; the first
        comes once ``window`` seconds have arrived, the last covers the stream's end (a partial hop):
        :mod:`speechbrain_ext.serving.streaming`. Memory: one window, whatever the stream's length and chunk sizes.

        Arguments
        ---------
        chunks : iterable
            16 kHz mono chunks of any size (float arrays or tensors, or ``int16`` PCM arrays).
        window, hop : float
            Seconds.
        n_samples : int, optional
            Bayesian head: MC-average this many weight samples per window.
        clock : callable, optional
            ``clock(n)``: when sample ``n`` was due, for a live or paced source
            (:class:`~speechbrain_ext.serving.streaming.Pacer`); default: when its chunk arrived.

        Returns
        -------
        iterator of StreamDecision
            ``start``, ``end`` (seconds from the stream's start), ``label``, ``probabilities``, ``latency_ms``.

        Example (16 kHz mono int16 PCM from a pipe, a decision every half second)::

            from speechbrain_ext.serving.streaming import pcm_chunks
            for d in model.stream(pcm_chunks(sys.stdin.buffer), window=2.0, hop=0.5):
                print(d.start, d.end, d.label, d.latency_ms)
        """
        from speechbrain_ext.serving.streaming import stream_decisions

        labels = self.labels

        def decide(wav: torch.Tensor):
            out_prob, _, _, text_lab = self.classify_batch(wav.unsqueeze(0), n_samples=n_samples)
            return text_lab[0], dict(zip(labels, out_prob[0].exp().tolist()))

        return stream_decisions(decide, chunks, window, hop, clock)

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


def interface_for(hparams_keys) -> type[ModelInterface]:
    """The interface class of an inference hparams file, from its top-level keys.

    Example
    -------
    >>> interface_for({"output_names": None}).__name__, interface_for({"label_encoder": None}).__name__
    ('EmotionRegressor', 'EmotionClassifier')
    """
    return EmotionRegressor if "output_names" in hparams_keys else EmotionClassifier


__all__ = ["EmotionClassifier", "EmotionRegressor", "PredictionSet", "Segment", "interface_for"]
