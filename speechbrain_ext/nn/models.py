"""The modules that compute a prediction, shared by training and inference.

A recipe's YAML builds one ``model``: :class:`UtteranceModel` or
:class:`SegmentModel` over audio, :class:`TextModel` over transcripts, or
:class:`EmbeddingModel` over the cached embeddings of other runs (early
fusion). The Brain trains it and ``hub export`` writes the same node into
the inference YAML, so the exported interface runs exactly the forward pass
that was evaluated in training. Each returns a :class:`ModelOutput` with the
pieces the losses need (embeddings, segments) and ``decision``, the output
that is scored and returned at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechbrain_ext.nn.pooling import SegmentPooling, frame_counts, segment_decision


@dataclass
class ModelOutput:
    """What a model computes for a batch."""

    scores: torch.Tensor  # (batch, outputs) utterance outputs: log-posteriors or intensities
    embeddings: torch.Tensor  # (batch, dim) pooled utterance embeddings (head input)
    n_frames: torch.Tensor  # (batch,) real encoder frames
    decision: torch.Tensor  # (batch, outputs) what evaluation scores and inference returns
    segments: torch.Tensor | None = None  # (batch, windows, dim)
    segment_mask: torch.Tensor | None = None  # (batch, windows)
    segment_scores: torch.Tensor | None = None  # (batch, windows, outputs)


class UtteranceModel(nn.Module):
    """Encoder -> pooling -> head -> activation: one output vector per utterance.

    Arguments
    ---------
    encoder : nn.Module
        ``encoder(wavs, wav_lens) -> (frames, frame_lens)`` (:class:`~speechbrain_ext.nn.encoders.SSLEncoder`).
    pooling : nn.Module
        ``pooling(frames, frame_lens) -> (batch, dim)`` (mean or attention pooling).
    head : nn.Module
        Linear (or Bayesian linear) layer.
    activation : nn.Module
        ``LogSoftmax`` for classification, ``Sigmoid`` for intensities.

    Example
    -------
    >>> from speechbrain_ext.nn.pooling import MaskedMeanPooling
    >>> class Frames(nn.Module):  # stands in for an SSL encoder
    ...     def forward(self, wavs, lens):
    ...         return wavs.view(wavs.shape[0], -1, 2), lens
    >>> model = UtteranceModel(Frames(), MaskedMeanPooling(), nn.Linear(2, 3), nn.LogSoftmax(dim=-1))
    >>> out = model(torch.randn(4, 10), torch.ones(4))
    >>> out.decision.shape, bool(torch.equal(out.decision, out.scores))
    (torch.Size([4, 3]), True)
    """

    def __init__(self, encoder: nn.Module, pooling: nn.Module, head: nn.Module, activation: nn.Module):
        super().__init__()
        self.encoder, self.pooling, self.head, self.activation = encoder, pooling, head, activation

    def encode(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames and their relative lengths."""
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        return self.encoder(wavs, wav_lens)

    def from_frames(self, frames: torch.Tensor, frame_lens: torch.Tensor | None = None) -> ModelOutput:
        """Pool the frames and apply the head."""
        if frame_lens is None:
            frame_lens = torch.ones(frames.shape[0], device=frames.device)
        embeddings = self.pooling(frames, frame_lens)
        scores = self.activation(self.head(embeddings))
        return ModelOutput(
            scores=scores, embeddings=embeddings, n_frames=frame_counts(frame_lens, frames.shape[1]), decision=scores
        )

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> ModelOutput:
        """Encode 16 kHz waveforms ``(batch, samples)`` with relative lengths and predict."""
        return self.from_frames(*self.encode(wavs, wav_lens))

    def window_scores(self, frames: torch.Tensor, size: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs of the model's pooling and head on windows of one utterance's frames (a timeline).

        Windows of ``size`` frames start every ``hop`` frames, plus one aligned
        to the end when the last window stops short of it; each window is
        pooled by the model's own pooling (mean or attention).

        Arguments
        ---------
        frames : torch.Tensor
            ``(1, time, dim)`` frames of one utterance.
        size, hop : int
            Window length and shift in frames.

        Returns
        -------
        starts : torch.Tensor
            ``(windows,)`` first frame of each window.
        scores : torch.Tensor
            ``(windows, outputs)``.
        """
        n = frames.shape[1]
        starts = window_starts(n, size, hop)
        length = min(size, n)
        windows = torch.stack([frames[0, s : s + length] for s in starts.tolist()])
        return starts, self.activation(self.head(self.pooling(windows, torch.ones(len(windows), device=frames.device))))


def window_starts(n_frames: int, size: int, hop: int) -> torch.Tensor:
    """Start frames of windows covering ``n_frames``: every ``hop``, plus one aligned to the end.

    Example
    -------
    >>> window_starts(10, 4, 2).tolist(), window_starts(8, 4, 2).tolist(), window_starts(3, 4, 2).tolist()
    ([0, 2, 4, 6], [0, 2, 4], [0])
    """
    if n_frames <= size:
        return torch.zeros(1, dtype=torch.long)
    starts = list(range(0, n_frames - size + 1, hop))
    if starts[-1] + size < n_frames:
        starts.append(n_frames - size)
    return torch.tensor(starts, dtype=torch.long)


class SegmentModel(UtteranceModel):
    """An :class:`UtteranceModel` that also classifies overlapping segments (segment_triplet).

    The head scores every segment; ``decision`` is the most confident
    segment's posterior (or the mean over segments, compare2023). The
    utterance output ``scores`` is kept for the utterance term of the loss.

    Arguments
    ---------
    encoder, pooling, head, activation
        As :class:`UtteranceModel`.
    segments : SegmentPooling
        Window size and hop in frames.
    decision : str
        ``most_confident`` or ``mean`` (of segment posteriors), or
        ``mean_outputs`` (of segment intensities, for a sigmoid regressor);
        see :func:`~speechbrain_ext.nn.pooling.segment_decision`.
    """

    def __init__(self, encoder, pooling, head, activation, segments: SegmentPooling, decision: str = "most_confident"):
        super().__init__(encoder, pooling, head, activation)
        if decision not in ("most_confident", "mean", "mean_outputs"):
            raise ValueError(f"decision must be 'most_confident', 'mean' or 'mean_outputs', got {decision!r}")
        self.segments, self.decision_mode = segments, decision

    def from_frames(self, frames: torch.Tensor, frame_lens: torch.Tensor | None = None) -> ModelOutput:
        """Utterance outputs plus per-segment outputs and the segment decision."""
        out = super().from_frames(frames, frame_lens)
        out.segments, out.segment_mask = self.segments(frames, frame_lens)
        out.segment_scores = self.activation(self.head(out.segments))
        out.decision = segment_decision(out.segment_scores, out.segment_mask, self.decision_mode)
        return out


class TextModel(nn.Module):
    """Text encoder -> head -> activation: one output vector per transcript (compare2023 text branch).

    Arguments
    ---------
    encoder : nn.Module
        ``encoder(texts) -> (embeddings, n_tokens)`` (:class:`~speechbrain_ext.nn.text.TranscriptEncoder`).
    head : nn.Module
        Linear (or Bayesian linear) layer.
    activation : nn.Module
        ``LogSoftmax`` for classification, ``Sigmoid`` for intensities.

    Example
    -------
    >>> class Words(nn.Module):  # stands in for a BERT encoder
    ...     def forward(self, texts):
    ...         return torch.tensor([[len(t), t.count(" ")] for t in texts], dtype=torch.float), torch.ones(len(texts))
    >>> out = TextModel(Words(), nn.Linear(2, 9), nn.Sigmoid())(["so happy", "why"])
    >>> out.decision.shape, out.embeddings.tolist()
    (torch.Size([2, 9]), [[8.0, 1.0], [3.0, 0.0]])
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, activation: nn.Module):
        super().__init__()
        self.encoder, self.head, self.activation = encoder, head, activation

    def forward(self, texts) -> ModelOutput:
        """Encode a batch of transcripts and predict."""
        embeddings, n_tokens = self.encoder(texts)
        scores = self.activation(self.head(embeddings))
        return ModelOutput(scores=scores, embeddings=embeddings, n_frames=n_tokens, decision=scores)


class EmbeddingModel(nn.Module):
    """Head -> activation on given embeddings: the early-fusion model (compare2023, Emotion Share model 5).

    The input is the concatenation of the embeddings that separately trained
    models computed (:class:`~speechbrain_ext.methods.fusion.EarlyFusionFeatures`:
    an audio run's pooled wav2vec2 frames and a text run's [CLS] vectors), so
    training never runs an encoder.

    Arguments
    ---------
    head : nn.Module
        Linear (or Bayesian linear) layer over the concatenated embeddings.
    activation : nn.Module
        ``LogSoftmax`` for classification, ``Sigmoid`` for intensities.

    Example
    -------
    >>> out = EmbeddingModel(nn.Linear(5, 2), nn.LogSoftmax(dim=-1))(torch.randn(3, 5))
    >>> out.decision.shape, out.embeddings.shape
    (torch.Size([3, 2]), torch.Size([3, 5]))
    """

    def __init__(self, head: nn.Module, activation: nn.Module):
        super().__init__()
        self.head, self.activation = head, activation

    def forward(self, features: torch.Tensor) -> ModelOutput:
        """Outputs of ``(batch, dim)`` concatenated embeddings."""
        scores = self.activation(self.head(features))
        return ModelOutput(
            scores=scores,
            embeddings=features,
            n_frames=torch.ones(len(features), device=features.device),
            decision=scores,
        )


class FusedModel(nn.Module):
    """Trained models combined (compare2023): early fusion, or late fusion of their outputs.

    What ``hub export`` builds from an early-fusion run (the head it trained
    over the branches' embeddings) or from a late-fusion folder of
    ``python -m speechbrain_ext.fuse`` (the branches' weighted outputs).
    Audio branches (:class:`UtteranceModel`, :class:`SegmentModel`) read the
    waveforms, text branches (:class:`TextModel`) the transcripts.

    Arguments
    ---------
    branches : list of nn.Module
        The trained models, in the order of the fusion (the early-fusion
        embeddings are concatenated in this order).
    head, activation : nn.Module, optional
        Early fusion: the head over the concatenated branch embeddings and its activation.
    weights : list of float, optional
        Late fusion: ``sum_i w_i s_i / sum_i w_i`` of the branches' outputs.
    log_probs : bool
        Late fusion of classifiers: the outputs are log-posteriors, so the
        probabilities are averaged and the result is a log-posterior again.

    Example
    -------
    >>> class Words(nn.Module):
    ...     def forward(self, texts):
    ...         return torch.tensor([[float(len(t))] for t in texts]), torch.ones(len(texts))
    >>> text = TextModel(Words(), nn.Linear(1, 2), nn.LogSoftmax(dim=-1))
    >>> late = FusedModel([text, text], weights=[1.0, 3.0])
    >>> torch.allclose(late(transcripts=["hello"]).decision, text(["hello"]).decision)
    True
    >>> early = FusedModel([text, text], head=nn.Linear(2, 2), activation=nn.LogSoftmax(dim=-1))
    >>> early(transcripts=["hi", "hello"]).embeddings.tolist()
    [[2.0, 2.0], [5.0, 5.0]]
    """

    def __init__(
        self,
        branches,
        head: nn.Module | None = None,
        activation: nn.Module | None = None,
        weights=None,
        log_probs: bool = True,
    ):
        super().__init__()
        if (head is None) == (weights is None):
            raise ValueError("a FusedModel is either early fusion (head and activation) or late fusion (weights)")
        if weights is not None and len(weights) != len(branches):
            raise ValueError(
                f"late fusion needs one weight per branch: {len(weights)} weights for {len(branches)} branches"
            )
        self.branches = nn.ModuleList(branches)
        self.head, self.activation = head, activation
        self.weights = None if weights is None else [float(w) for w in weights]
        self.log_probs = bool(log_probs)

    def forward(
        self, wavs: torch.Tensor | None = None, wav_lens: torch.Tensor | None = None, transcripts=None
    ) -> ModelOutput:
        """Run every branch on its input and combine."""
        return self.combine(
            [
                branch(transcripts) if isinstance(branch, TextModel) else branch(wavs, wav_lens)
                for branch in self.branches
            ]
        )

    def combine(self, outputs: list[ModelOutput]) -> ModelOutput:
        """The fused output of the branches' outputs."""
        if self.head is not None:
            embeddings = torch.cat([out.embeddings for out in outputs], dim=-1)
            scores = self.activation(self.head(embeddings))
            return ModelOutput(scores=scores, embeddings=embeddings, n_frames=outputs[0].n_frames, decision=scores)
        weights = torch.tensor(self.weights, device=outputs[0].decision.device) / sum(self.weights)
        stacked = torch.stack([out.decision for out in outputs])
        fused = torch.einsum("b,b...->...", weights, stacked.exp() if self.log_probs else stacked)
        if self.log_probs:
            fused = torch.log(fused.clamp_min(1e-12))
        return ModelOutput(
            scores=fused,
            embeddings=torch.cat([out.embeddings for out in outputs], dim=-1),
            n_frames=outputs[0].n_frames,
            decision=fused,
        )
