"""Segment/attention pooling and the losses against plain loops and torch references."""

import math

import pytest
import torch

from speechbrain_ext.nn.losses import MultiTaskLoss, SupConLoss, TripletLoss, flatten_segments, segment_nll
from speechbrain_ext.nn.pooling import AttentionPooling, SegmentPooling, frame_counts, segment_decision


def _loop_segments(frames, n_frames, size, hop):
    """Reference: a Python loop over the windows of each utterance, plus one aligned to its end when frames are left over."""
    out = []
    for x, n in zip(frames, n_frames.tolist()):
        x = x[:n]
        if n <= size:
            out.append([x.mean(0)])
            continue
        starts = list(range(0, n - size + 1, hop))
        if starts[-1] + size < n:
            starts.append(n - size)
        out.append([x[s : s + size].mean(0) for s in starts])
    return out


def test_segment_pooling_covers_every_frame():
    """The tail after the last full window is a segment of its own (IEMOCAP 140/70 lost up to 1.4 s without it)."""
    frames = torch.zeros(1, 215, 1)
    frames[0, 210:] = 1.0  # only the last 5 frames carry signal
    segments, mask = SegmentPooling(140, 70)(frames, torch.ones(1))
    assert mask.sum() == 3 and segments[0, 2, 0] == pytest.approx(5 / 140)
    exact = SegmentPooling(4, 2)(torch.arange(8.0).view(1, 8, 1), None)[0]  # ends on a window boundary: no extra window
    assert exact.squeeze(-1).tolist() == [[1.5, 3.5, 5.5]]


@pytest.mark.parametrize("size,hop", [(8, 4), (5, 2), (30, 10), (3, 3)])
def test_segment_pooling_matches_loop(size, hop):
    torch.manual_seed(0)
    frames = torch.randn(6, 25, 4)
    lengths = torch.tensor([1.0, 0.8, 0.33, 0.2, 0.04, 0.6])
    segments, mask = SegmentPooling(size, hop)(frames, lengths)
    expected = _loop_segments(frames, frame_counts(lengths, 25), size, hop)
    for b, segs in enumerate(expected):
        assert mask[b].sum().item() == len(segs)
        assert not mask[b, len(segs) :].any()
        torch.testing.assert_close(segments[b, : len(segs)], torch.stack(segs))
        assert segments[b, len(segs) :].abs().sum() == 0


def test_segment_pooling_short_batch_and_defaults():
    pool = SegmentPooling(80)
    assert pool.hop == 40
    frames = torch.randn(2, 10, 3)
    segments, mask = pool(frames, torch.tensor([1.0, 0.5]))
    assert segments.shape == (2, 1, 3) and mask.all()
    torch.testing.assert_close(segments[1, 0], frames[1, :5].mean(0))
    with pytest.raises(ValueError):
        SegmentPooling(0)


def test_segment_decision_matches_loop():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 4, 3), -1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    confident = segment_decision(log_probs, mask, "most_confident")
    averaged = segment_decision(log_probs, mask, "mean")
    for b in range(5):
        valid = [log_probs[b, j] for j in range(4) if mask[b, j]]
        best = max(valid, key=lambda lp: lp.max().item())
        torch.testing.assert_close(confident[b], best)
        torch.testing.assert_close(averaged[b].exp(), torch.stack([v.exp() for v in valid]).mean(0))
    with pytest.raises(ValueError):
        segment_decision(log_probs, mask, "vote")


def test_attention_pooling_formula_and_mask():
    torch.manual_seed(0)
    pool = AttentionPooling(6)
    frames = torch.randn(3, 9, 6)
    lengths = torch.tensor([1.0, 5 / 9, 2 / 9])
    pooled = pool(frames, lengths)
    w = pool.score.weight[0]
    for b, n in enumerate([9, 5, 2]):
        scores = torch.tanh(frames[b, :n] @ w)
        alpha = torch.softmax(scores, 0)
        torch.testing.assert_close(pooled[b], (alpha[:, None] * frames[b, :n]).sum(0))
        torch.testing.assert_close(pool(frames[b : b + 1, :n])[0], pooled[b])
    assert pool.attention(frames, lengths)[2, 2:].abs().sum() == 0


def test_segment_nll_matches_loop():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(3, 4, 5), -1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    targets = torch.tensor([2, 0, 4])
    terms = [[-log_probs[b, j, targets[b]] for j in range(4) if mask[b, j]] for b in range(3)]
    flat = [t for ts in terms for t in ts]
    assert segment_nll(log_probs, mask, targets).item() == pytest.approx(sum(flat).item() / len(flat), rel=1e-6)
    assert segment_nll(log_probs, mask, targets.view(-1, 1), "sum_per_utterance").item() == pytest.approx(
        sum(sum(ts) for ts in terms).item() / 3, rel=1e-6
    )


def test_triplet_matches_torch_on_given_triplets():
    torch.manual_seed(0)
    a, p, n = torch.randn(3, 20, 8).unbind(0)
    ours = TripletLoss(margin=1.0).from_triplets(a, p, n)
    reference = torch.nn.TripletMarginLoss(margin=1.0, p=2)(a, p, n)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-4)


def test_triplet_length_matched_negative_by_hand():
    # anchor 0 (class 0) has one positive, element 1 (length 50). Negatives:
    # element 2 (length 10), 3 (length 48), 4 (length 90) -> 3 has the closest length.
    emb = torch.randn(5, 4)
    labels = torch.tensor([0, 0, 1, 1, 2])
    lengths = torch.tensor([20, 50, 10, 48, 90])
    anchors, positives, negatives = TripletLoss().mine(emb, labels, lengths)
    row = anchors.tolist().index(0)
    assert positives[row].item() == 1 and negatives[row].item() == 3
    # element 4 is alone in its class: never an anchor
    assert 4 not in anchors.tolist()
    # segments of one utterance are not each other's positives
    groups = torch.tensor([0, 0, 1, 2, 3])
    anchors, _, _ = TripletLoss().mine(emb, labels, lengths, groups)
    assert 0 not in anchors.tolist() and 1 not in anchors.tolist()


def test_triplet_batch_hard_matches_loop():
    torch.manual_seed(0)
    emb = torch.randn(12, 5)
    labels = torch.tensor([0, 1, 2] * 4)
    loss = TripletLoss(mining="batch_hard")(emb, labels)
    terms = []
    for i in range(12):
        d = [torch.dist(emb[i], emb[j]).item() for j in range(12)]
        hardest_pos = max(d[j] for j in range(12) if j != i and labels[j] == labels[i])
        hardest_neg = min(d[j] for j in range(12) if labels[j] != labels[i])
        terms.append(max(hardest_pos - hardest_neg + 1.0, 0.0))
    assert loss.item() == pytest.approx(sum(terms) / 12, rel=1e-5)


def test_triplet_is_zero_without_valid_triplets_and_keeps_graph():
    emb = torch.randn(3, 4, requires_grad=True)
    loss = TripletLoss()(emb, torch.tensor([0, 0, 0]))
    assert loss.item() == 0.0
    loss.backward()


def test_flatten_segments_feeds_the_triplet_loss():
    segments, mask = SegmentPooling(4, 2)(torch.randn(3, 10, 6), torch.tensor([1.0, 0.3, 0.6]))
    emb, labels, lengths, groups = flatten_segments(
        segments, mask, torch.tensor([0, 1, 0]), frame_counts(torch.tensor([1.0, 0.3, 0.6]), 10), 4
    )
    assert emb.shape[0] == int(mask.sum()) == 4 + 1 + 2
    assert lengths.tolist() == [4, 4, 4, 4, 3, 4, 4] and groups.tolist() == [0, 0, 0, 0, 1, 2, 2]
    loss = TripletLoss(margin=1.0)
    torch.manual_seed(3)
    value = loss(emb, labels, lengths, groups).item()
    torch.manual_seed(3)
    anchors, positives, negatives = loss.mine(emb, labels, lengths, groups)
    # the mining's rules: a positive of the same label from another utterance, a negative of another label, length-matched to the positive
    for a, p, n in zip(anchors.tolist(), positives.tolist(), negatives.tolist()):
        assert labels[p] == labels[a] and groups[p] != groups[a] and labels[n] != labels[a]
        gaps = {m: abs(lengths[m] - lengths[p]).item() for m in range(len(labels)) if labels[m] != labels[a]}
        assert gaps[n] == min(gaps.values())
    assert anchors.tolist() == [0, 1, 2, 3, 5, 6]  # utterance 1 has no same-label partner in another utterance
    # the loss is the paper's hinge on those triplets, by a loop
    hinge = [
        max(0.0, torch.dist(emb[a], emb[p]).item() - torch.dist(emb[a], emb[n]).item() + 1.0)
        for a, p, n in zip(anchors, positives, negatives)
    ]
    assert value == pytest.approx(sum(hinge) / len(hinge), rel=1e-5)


def _naive_supcon(features, labels, tau):
    """Eq. 1 with explicit loops, averaged over anchors that have positives."""
    z = torch.nn.functional.normalize(features, dim=-1)
    n = len(labels)
    total, anchors = 0.0, 0
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(math.exp(torch.dot(z[i], z[a]).item() / tau) for a in range(n) if a != i)
        total += -sum(math.log(math.exp(torch.dot(z[i], z[p]).item() / tau) / denom) for p in positives) / len(
            positives
        )
        anchors += 1
    return total / anchors


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_supcon_matches_naive_double_loop(tau):
    torch.manual_seed(0)
    features = torch.randn(10, 6)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 0, 4])  # classes 2 and 4 have no positive
    assert SupConLoss(tau)(features, labels).item() == pytest.approx(
        _naive_supcon(features, labels.tolist(), tau), rel=1e-4
    )


def test_supcon_views_are_extra_positives():
    torch.manual_seed(0)
    original, augmented = torch.randn(4, 6), torch.randn(4, 6)
    labels = torch.tensor([0, 1, 2, 3])  # only the augmented view is a positive
    views = torch.stack([original, augmented], dim=1)
    flat = torch.stack([original, augmented], dim=1).reshape(8, 6)
    expected = _naive_supcon(flat, labels.repeat_interleave(2).tolist(), 0.07)
    assert SupConLoss()(views, labels).item() == pytest.approx(expected, rel=1e-4)


def test_supcon_decreases_when_classes_cluster():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [0.01, 0.99]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.99, 0.01], [0.01, 0.99]])
    assert SupConLoss()(clustered, labels) < SupConLoss()(mixed, labels)


def test_multitask_loss():
    main, aux = torch.tensor(2.0), torch.tensor(10.0)
    assert MultiTaskLoss(0.1)(main, aux).item() == pytest.approx(0.9 * 2 + 0.1 * 10)
    assert MultiTaskLoss()(main, aux).item() == 12.0
    with pytest.raises(ValueError):
        MultiTaskLoss(1.5)
