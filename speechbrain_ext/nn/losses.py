"""Losses of the papers: segment NLL, triplet, supervised contrastive, multi-task weighting.

- :func:`segment_nll` (segment_triplet eq. 3): NLL over every valid segment.
- :class:`TripletLoss` (segment_triplet eq. 2): margin 1, L2 distance, negatives
  of a duration similar to the positive's, or batch-hard mining.
- :class:`SupConLoss` (supcon_knn eq. 1, Khosla et al. 2020).
- :class:`MultiTaskLoss`: ``(1 - a) main + a aux``, or the plain sum when the
  paper uses no weighting.
- :class:`CCCLoss`: ``1 - mean CCC`` over the outputs (Lin's concordance
  correlation over the batch), the dimensional emotion loss of audEERING and
  the MSP-Podcast challenge baselines.

All mining and pair sums are matrix operations over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_nll(
    segment_log_probs: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """NLL of every valid segment against its utterance's label.

    Arguments
    ---------
    segment_log_probs : torch.Tensor
        ``(batch, n_windows, n_classes)``.
    mask : torch.Tensor
        ``(batch, n_windows)`` valid segments.
    targets : torch.Tensor
        ``(batch,)`` or ``(batch, 1)`` class indices.
    reduction : str
        ``"mean"``: average over all valid segments of the batch (scale
        independent of utterance length). ``"sum_per_utterance"``: sum over an
        utterance's segments, then mean over the batch (eq. 3 literally).

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> lp = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]))
    >>> round(segment_nll(lp, torch.tensor([[True, False]]), torch.tensor([0])).item(), 4)
    0.6931
    """
    targets = targets.reshape(-1)
    picked = segment_log_probs.gather(-1, targets.view(-1, 1, 1).expand(-1, segment_log_probs.shape[1], 1)).squeeze(-1)
    weights = mask.to(picked.dtype)
    if reduction == "mean":
        return -(picked * weights).sum() / weights.sum().clamp_min(1)
    if reduction == "sum_per_utterance":
        return -(picked * weights).sum(dim=1).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum_per_utterance', got {reduction!r}")


def flatten_segments(
    segments: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, n_frames: torch.Tensor, segment_size: int
):
    """Valid segments as a flat batch for the triplet loss on segments (S).

    Arguments
    ---------
    segments : torch.Tensor
        ``(batch, n_windows, dim)`` from :class:`speechbrain_ext.nn.pooling.SegmentPooling`.
    mask : torch.Tensor
        ``(batch, n_windows)``.
    targets : torch.Tensor
        ``(batch,)`` class indices.
    n_frames : torch.Tensor
        ``(batch,)`` real frames per utterance.
    segment_size : int
        Window length; a one-segment short utterance has its own frame count as length.

    Returns
    -------
    embeddings, labels, lengths, utterance_index : torch.Tensor
        One row per valid segment.

    Example
    -------
    >>> seg = torch.zeros(2, 3, 4)
    >>> mask = torch.tensor([[True, True, False], [True, False, False]])
    >>> emb, lab, length, utt = flatten_segments(seg, mask, torch.tensor([1, 0]), torch.tensor([30, 7]), 20)
    >>> lab.tolist(), length.tolist(), utt.tolist()
    ([1, 1, 0], [20, 20, 7], [0, 0, 1])
    """
    targets = targets.reshape(-1)
    utt_index = torch.arange(len(targets), device=segments.device)[:, None].expand_as(mask)[mask]
    lengths = torch.clamp(n_frames, max=segment_size)[utt_index]
    return segments[mask], targets[utt_index], lengths, utt_index


class TripletLoss(torch.nn.Module):
    """Triplet loss ``max(d(a, p) - d(a, n) + margin, 0)`` with L2 distance and in-batch mining.

    Every element of the batch is an anchor that has both a positive (same
    label, another element) and a negative (another label).

    Arguments
    ---------
    margin : float
        The paper's lambda (1 in every experiment).
    mining : str
        ``"length_matched"`` (segment_triplet): a random positive, and the
        negative whose length is closest to the positive's, so a whole
        unsplittable utterance is not compared with a segment.
        ``"batch_hard"``: the farthest positive and the closest negative.
    same_utterance_positives : bool
        With segments, whether another segment of the anchor's own utterance
        may serve as its positive (default False when ``groups`` are given).

    Example
    -------
    >>> loss = TripletLoss(margin=1.0)
    >>> a, p, n = torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])
    >>> loss.from_triplets(a, p, n).item()
    0.0
    >>> emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.3, 0.0]])
    >>> round(loss(emb, torch.tensor([0, 0, 1, 1]), mining="batch_hard").item(), 4)
    0.95
    """

    def __init__(self, margin: float = 1.0, mining: str = "length_matched", same_utterance_positives: bool = False):
        super().__init__()
        if mining not in ("length_matched", "batch_hard"):
            raise ValueError(f"mining must be 'length_matched' or 'batch_hard', got {mining!r}")
        self.margin, self.mining, self.same_utterance_positives = float(margin), mining, same_utterance_positives

    def from_triplets(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """Mean loss over given ``(n, dim)`` triplets."""
        d_pos = torch.linalg.vector_norm(anchor - positive, dim=-1)
        d_neg = torch.linalg.vector_norm(anchor - negative, dim=-1)
        return F.relu(d_pos - d_neg + self.margin).mean()

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        mining: str | None = None,
    ):
        """Indices ``(anchor, positive, negative)`` of the mined triplets.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``(n, dim)``.
        labels : torch.Tensor
            ``(n,)``.
        lengths : torch.Tensor, optional
            ``(n,)`` durations (frames or seconds) for length matching; all equal if absent.
        groups : torch.Tensor, optional
            ``(n,)`` source utterance of each element (segments); excludes an
            utterance's own segments as positives unless ``same_utterance_positives``.
        mining : str, optional
            Overrides the constructor's strategy.

        Returns
        -------
        tuple of torch.Tensor
        """
        mining = mining or self.mining
        n = len(labels)
        labels = labels.reshape(-1)
        same = labels[:, None] == labels[None, :]
        not_self = ~torch.eye(n, dtype=torch.bool, device=labels.device)
        positive_ok = same & not_self
        if groups is not None and not self.same_utterance_positives:
            positive_ok &= groups[:, None] != groups[None, :]
        negative_ok = ~same
        anchors = positive_ok.any(dim=1) & negative_ok.any(dim=1)
        with torch.no_grad():
            if mining == "batch_hard":
                dist = torch.cdist(embeddings.detach().float(), embeddings.detach().float())
                positive = dist.masked_fill(~positive_ok, float("-inf")).argmax(dim=1)
                negative = dist.masked_fill(~negative_ok, float("inf")).argmin(dim=1)
            else:
                positive = torch.rand(n, n, device=labels.device).masked_fill(~positive_ok, -1.0).argmax(dim=1)
                lengths = torch.zeros(n, device=labels.device) if lengths is None else lengths.reshape(-1).float()
                gap = (lengths[None, :] - lengths[positive][:, None]).abs()
                # A tiny random tie-break spreads the choice among equal lengths.
                gap = gap + 1e-3 * torch.rand_like(gap) * (gap.max() + 1)
                negative = gap.masked_fill(~negative_ok, float("inf")).argmin(dim=1)
        index = torch.nonzero(anchors).squeeze(1)
        return index, positive[index], negative[index]

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        mining: str | None = None,
    ) -> torch.Tensor:
        """Mine triplets in the batch and return the mean loss (zero when none can be formed).

        Arguments are those of :meth:`mine`.
        """
        with torch.autocast(embeddings.device.type, enabled=False):  # distances in fp32 under --precision=bf16/fp16
            embeddings = embeddings.float()
            a, p, n = self.mine(embeddings, labels, lengths, groups, mining)
            if len(a) == 0:
                return embeddings.sum() * 0.0
            return self.from_triplets(embeddings[a], embeddings[p], embeddings[n])


class SupConLoss(torch.nn.Module):
    """Supervised contrastive loss (supcon_knn eq. 1; Khosla et al., 2020).

    ``L = mean_i -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau))``
    over anchors that have at least one positive, with ``z`` L2-normalised.
    Augmented views are extra rows sharing their original's label.

    Arguments
    ---------
    temperature : float
        tau (0.07 in the paper).
    normalize : bool
        L2-normalise embeddings first (Khosla et al.).

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> z = torch.randn(6, 8)
    >>> loss = SupConLoss(temperature=0.07)
    >>> views = torch.stack([z, z + 0.01 * torch.randn(6, 8)], dim=1)  # (batch, views, dim)
    >>> loss(views, torch.tensor([0, 0, 1, 1, 2, 2])).item() > 0
    True
    """

    def __init__(self, temperature: float = 0.07, normalize: bool = True):
        super().__init__()
        self.temperature, self.normalize = float(temperature), normalize

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss for ``(n, dim)`` embeddings, or ``(n, views, dim)`` with the views of each item.

        Arguments
        ---------
        features : torch.Tensor
            Embeddings.
        labels : torch.Tensor
            ``(n,)`` class indices.

        Returns
        -------
        torch.Tensor
        """
        with torch.autocast(features.device.type, enabled=False):  # similarities in fp32 under --precision=bf16/fp16
            return self._loss(features.float(), labels)

    def _loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.reshape(-1)
        if features.dim() == 3:
            n_views = features.shape[1]
            features = features.reshape(-1, features.shape[-1])
            labels = labels.repeat_interleave(n_views)
        if self.normalize:
            features = F.normalize(features, dim=-1)
        n = features.shape[0]
        logits = features @ features.T / self.temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
        log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = positives.sum(dim=1)
        has_pos = n_pos > 0
        if not has_pos.any():
            return features.sum() * 0.0
        mean_log_prob_pos = (log_prob * positives).sum(dim=1)[has_pos] / n_pos[has_pos]
        return -mean_log_prob_pos.mean()


class MultiTaskLoss(torch.nn.Module):
    """``(1 - weight) * main + weight * aux``, or ``main + aux`` when ``weight`` is None.

    segment_triplet: ``L = (1 - a) NLL + a Tri`` (RAVDESS a = 0.7 / 0.1 / 0.2),
    plain sum for IEMOCAP and FESC; supcon_knn: ``(1 - lambda) CE + lambda SupCon``, lambda = 0.1.

    Arguments
    ---------
    weight : float, optional
        Auxiliary weight in [0, 1].

    Example
    -------
    >>> MultiTaskLoss(0.25)(torch.tensor(4.0), torch.tensor(8.0)).item()
    5.0
    >>> MultiTaskLoss(None)(torch.tensor(4.0), torch.tensor(8.0)).item()
    12.0
    """

    def __init__(self, weight: float | None = None):
        super().__init__()
        if weight is not None and not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {weight}")
        self.weight = weight

    def forward(self, main: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Combine the two losses."""
        if self.weight is None:
            return main + aux
        return (1.0 - self.weight) * main + self.weight * aux


class CCCLoss(torch.nn.Module):
    """``1 - mean CCC``: Lin's concordance correlation per output column over the batch, averaged over the columns.

    ``CCC = 2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)`` with
    population moments (as :func:`speechbrain_ext.evaluation.metrics.concordance_correlation`);
    ``eps`` keeps a batch whose targets and predictions are one constant finite.

    Example
    -------
    >>> targets = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.9, 0.2]])
    >>> round(CCCLoss()(targets, targets).item(), 6)
    0.0
    >>> round(CCCLoss()(targets + 0.1, targets).item(), 4)  # a shift costs agreement, not correlation
    0.0511
    """

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``(batch, n_outputs)`` (or ``(batch,)``) predictions."""
        p, t = predictions.float(), targets.float()
        if p.dim() == 1:
            p, t = p[:, None], t[:, None]
        mp, mt = p.mean(dim=0), t.mean(dim=0)
        cov = ((p - mp) * (t - mt)).mean(dim=0)
        ccc = 2 * cov / (p.var(dim=0, unbiased=False) + t.var(dim=0, unbiased=False) + (mp - mt) ** 2 + self.eps)
        return 1.0 - ccc.mean()
