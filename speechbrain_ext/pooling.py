"""Pooling of SSL frame sequences into utterance embeddings, respecting padding."""

from __future__ import annotations

import torch


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean ``(batch, max_len)`` mask of real frames from SpeechBrain relative lengths.

    At least one frame is kept per utterance.

    Example
    -------
    >>> frame_mask(torch.tensor([1.0, 0.5]), 4).tolist()
    [[True, True, True, True], [True, True, False, False]]
    """
    n_frames = torch.round(lengths * max_len).clamp(min=1, max=max_len)
    return torch.arange(max_len, device=lengths.device)[None, :] < n_frames[:, None]


class MaskedMeanPooling(torch.nn.Module):
    """Mean over the real (unpadded) frames of each utterance, vectorised.

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0]], [[2.0], [100.0]]])
    >>> MaskedMeanPooling()(x, torch.tensor([1.0, 0.5])).squeeze(-1).tolist()
    [2.0, 2.0]
    """

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Pool ``(batch, time, dim)`` frames with relative ``lengths`` to ``(batch, dim)``."""
        if lengths is None:
            return frames.mean(dim=1)
        mask = frame_mask(lengths, frames.shape[1]).unsqueeze(-1).to(frames.dtype)
        return (frames * mask).sum(dim=1) / mask.sum(dim=1)
