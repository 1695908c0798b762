"""The modules that compute a prediction, shared by training and inference.

A recipe's YAML builds one ``model`` (:class:`UtteranceModel`,
:class:`SegmentModel`, or :class:`TextModel` over transcripts); the Brain trains it and ``hub export`` writes the same
node into the inference YAML, so the exported interface runs exactly the
forward pass that was evaluated in training. Both return a
:class:`ModelOutput` with the pieces the losses need (embeddings, segments)
and ``decision``, the output that is scored and returned at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechbrain_ext.pooling import SegmentPooling, frame_counts, segment_decision


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
        ``encoder(wavs, wav_lens) -> (frames, frame_lens)`` (:class:`~speechbrain_ext.encoders.SSLEncoder`).
    pooling : nn.Module
        ``pooling(frames, frame_lens) -> (batch, dim)`` (mean or attention pooling).
    head : nn.Module
        Linear (or Bayesian linear) layer.
    activation : nn.Module
        ``LogSoftmax`` for classification, ``Sigmoid`` for intensities.

    Example
    -------
    >>> from speechbrain_ext.pooling import MaskedMeanPooling
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
        return ModelOutput(scores=scores, embeddings=embeddings, n_frames=frame_counts(frame_lens, frames.shape[1]), decision=scores)

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
        ``most_confident`` or ``mean``.
    """

    def __init__(self, encoder, pooling, head, activation, segments: SegmentPooling, decision: str = "most_confident"):
        super().__init__(encoder, pooling, head, activation)
        if decision not in ("most_confident", "mean"):
            raise ValueError(f"decision must be 'most_confident' or 'mean', got {decision!r}")
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
        ``encoder(texts) -> (embeddings, n_tokens)`` (:class:`~speechbrain_ext.text.TranscriptEncoder`).
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
