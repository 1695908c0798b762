"""EmotionBrain's losses and decisions against the same quantities computed by hand."""

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_ext.brain import EmotionBrain
from speechbrain_ext.losses import MultiTaskLoss, SupConLoss, TripletLoss, flatten_segments, segment_nll
from speechbrain_ext.pooling import MaskedMeanPooling, SegmentPooling, frame_mask, segment_decision


class FrameEncoder(torch.nn.Module):
    """Stands in for an SSL encoder: 'waveforms' are already (batch, frames * dim) features."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, wavs, lens):
        return self.scale * wavs.view(wavs.shape[0], -1, self.dim), lens


DIM, N_CLASSES = 4, 3


def make_brain(**extra):
    torch.manual_seed(0)
    classifier = torch.nn.Linear(DIM, N_CLASSES, bias=False)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["a", "b", "c"])
    hparams = {
        "pooling": MaskedMeanPooling(),
        "log_softmax": torch.nn.LogSoftmax(dim=-1),
        "compute_cost": torch.nn.functional.nll_loss,
        "opt_class": lambda params: torch.optim.SGD(params, lr=0.1),
        "label_encoder": encoder,
        **extra,
    }
    brain = EmotionBrain(
        modules={"ssl": FrameEncoder(DIM), "classifier": classifier}, opt_class=hparams["opt_class"], hparams=hparams, run_opts={"device": "cpu"}
    )
    return brain, classifier


def make_batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    frames = [7, 7, 3, 5, 7, 2]
    items = [{"id": f"u{i}", "sig": torch.randn(n * DIM, generator=generator), "emo_encoded": torch.tensor([i % N_CLASSES])} for i, n in enumerate(frames)]
    return PaddedBatch(items)


def utterance_parts(batch, classifier):
    wavs, lens = batch.sig
    frames = wavs.view(wavs.shape[0], -1, DIM)
    mask = frame_mask(lens, frames.shape[1]).unsqueeze(-1).float()
    emb = (frames * mask).sum(1) / mask.sum(1)
    return frames, lens, emb, torch.log_softmax(classifier(emb), dim=-1)


def test_seg_triplet_segments_loss_is_the_papers_formula():
    pooling = SegmentPooling(4, 2)
    brain, classifier = make_brain(
        segment_pooling=pooling,
        segment_nll_reduction="sum_per_utterance",
        triplet_loss=TripletLoss(margin=1.0),
        triplet_on="segments",
        loss_weighting=MultiTaskLoss(0.1),
    )
    batch = make_batch()
    targets = batch.emo_encoded.data.reshape(-1)
    torch.manual_seed(5)
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)

    frames, lens, emb, log_probs = utterance_parts(batch, classifier)
    segments, seg_mask = pooling(frames, lens)
    seg_log_probs = torch.log_softmax(classifier(segments), dim=-1)
    n_frames = torch.tensor([7, 7, 3, 5, 7, 2])
    # eq. 3: NLL of every segment (summed per utterance) plus the utterance NLL
    l_ser = torch.nn.functional.nll_loss(log_probs, targets) + segment_nll(seg_log_probs, seg_mask, targets, "sum_per_utterance")
    flat, labels, lengths, groups = flatten_segments(segments, seg_mask, targets, n_frames, 4)
    torch.manual_seed(5)
    tri = TripletLoss(margin=1.0)(flat, labels, lengths, groups)
    assert tri > 0
    torch.testing.assert_close(loss, 0.9 * l_ser + 0.1 * tri)


def test_segment_decision_is_recorded_at_evaluation():
    pooling = SegmentPooling(4, 2)
    brain, classifier = make_brain(segment_pooling=pooling)
    batch = make_batch()
    brain.on_stage_start(sb.Stage.VALID)
    with torch.no_grad():
        brain.compute_objectives(brain.compute_forward(batch, sb.Stage.VALID), batch, sb.Stage.VALID)
    frames, lens, _, _ = utterance_parts(batch, classifier)
    segments, seg_mask = pooling(frames, lens)
    expected = segment_decision(torch.log_softmax(classifier(segments), dim=-1), seg_mask).exp()
    torch.testing.assert_close(torch.tensor(brain._probs[0]), expected)


def test_triplet_on_utterances_uses_frame_counts_as_lengths():
    brain, classifier = make_brain(triplet_loss=TripletLoss(margin=1.0), triplet_on="utterance", loss_weighting=MultiTaskLoss(None))
    batch = make_batch()
    targets = batch.emo_encoded.data.reshape(-1)
    torch.manual_seed(3)
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    _, _, emb, log_probs = utterance_parts(batch, classifier)
    torch.manual_seed(3)
    tri = TripletLoss(margin=1.0)(emb, targets, torch.tensor([7, 7, 3, 5, 7, 2]))
    torch.testing.assert_close(loss, torch.nn.functional.nll_loss(log_probs, targets) + tri)


def test_supcon_sees_both_views_with_replicated_labels():
    class Doubler(torch.nn.Module):
        """An augmenter that appends a scaled copy, as SpeechBrain's Augmenter(concat_original=True)."""

        def forward(self, wavs, lens):
            return torch.cat([wavs, 0.5 * wavs]), torch.cat([lens, lens])

        def replicate_labels(self, labels):
            return torch.cat([labels, labels])

    brain, classifier = make_brain(supcon_loss=SupConLoss(0.07), wav_augment=Doubler(), loss_weighting=MultiTaskLoss(0.1))
    batch = make_batch()
    targets = batch.emo_encoded.data.reshape(-1)
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    wavs, lens = batch.sig
    frames = torch.cat([wavs, 0.5 * wavs]).view(2 * len(targets), -1, DIM)
    all_lens = torch.cat([lens, lens])
    mask = frame_mask(all_lens, frames.shape[1]).unsqueeze(-1).float()
    emb = (frames * mask).sum(1) / mask.sum(1)
    both = torch.cat([targets, targets])
    ce = torch.nn.functional.nll_loss(torch.log_softmax(classifier(emb), dim=-1), both)
    torch.testing.assert_close(loss, 0.9 * ce + 0.1 * SupConLoss(0.07)(emb, both))
    # no augmentation at evaluation
    assert brain.compute_forward(batch, sb.Stage.VALID).embeddings.shape[0] == len(targets)


def test_conflicting_or_misspelt_options_fail_clearly():
    brain, _ = make_brain(triplet_loss=TripletLoss(), supcon_loss=SupConLoss(), loss_weighting=MultiTaskLoss(None))
    batch = make_batch()
    with pytest.raises(ValueError, match="both triplet_loss and supcon_loss"):
        brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    brain, _ = make_brain(triplet_loss=TripletLoss(), triplet_on="segment", loss_weighting=MultiTaskLoss(None))
    with pytest.raises(ValueError, match="triplet_on must be"):
        brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
