"""The method Brains' losses and decisions against quantities computed by hand from the papers' equations.

The encoder is a stand-in that reshapes "waveforms" into frames, so every
intermediate quantity can be recomputed with plain loops. Auxiliary losses
are spies: they record what the Brain passed and return a known value, so the
Brain's wiring is checked independently of the losses' own implementations
(which ``test_pooling_losses.py`` checks against references).
"""

import io
import math
from pathlib import Path

import pytest
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML
from sklearn.metrics import balanced_accuracy_score
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.nnet.schedulers import NewBobScheduler

from speechbrain_ext.nn.losses import MultiTaskLoss
from speechbrain_ext.nn.models import SegmentModel, UtteranceModel
from speechbrain_ext.nn.pooling import MaskedMeanPooling, SegmentPooling
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.checkpoints import Checkpointer
from speechbrain_ext.training.tasks import UNLABELLED, ClassificationTask
from speechbrain_ext.utils.hyperparams import plain_values

DIM, N_CLASSES, FRAMES = 4, 3, [7, 7, 3, 5, 7, 2]


class FrameEncoder(torch.nn.Module):
    """Stands in for an SSL encoder: 'waveforms' are already (batch, frames * dim) features."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, wavs, lens):
        return self.scale * wavs.view(wavs.shape[0], -1, DIM), lens


class Spy(torch.nn.Module):
    """An auxiliary loss that records its inputs and returns a fixed value."""

    def __init__(self, value=0.37):
        super().__init__()
        self.value, self.calls = value, []

    def forward(self, *args):
        self.calls.append([a.detach().clone() if torch.is_tensor(a) else a for a in args])
        return torch.tensor(self.value)


def make_brain(brain_class, segments=False, tmp_path=None, **extra):
    torch.manual_seed(0)
    head = torch.nn.Linear(DIM, N_CLASSES, bias=False)
    args = (FrameEncoder(), MaskedMeanPooling(), head, torch.nn.LogSoftmax(dim=-1))
    model = SegmentModel(*args, segments=SegmentPooling(4, 2)) if segments else UtteranceModel(*args)
    task = ClassificationTask("emo", N_CLASSES, "/nonexistent")
    task.labels_from(["a", "b", "c"])
    hparams = {"task": task, "model": model, "opt_class": lambda params: torch.optim.SGD(params, lr=0.1), **extra}
    return brain_class(
        modules={"model": model}, opt_class=hparams["opt_class"], hparams=hparams, run_opts={"device": "cpu"}
    ), head


def make_batch(seed=1, targets=None):
    generator = torch.Generator().manual_seed(seed)
    targets = [i % N_CLASSES for i in range(len(FRAMES))] if targets is None else targets
    return PaddedBatch(
        [
            {"id": f"u{i}", "sig": torch.randn(n * DIM, generator=generator), "target": torch.tensor([t])}
            for i, (n, t) in enumerate(zip(FRAMES, targets))
        ]
    )


def utterance_frames(batch):
    """Each utterance's real frames, unpadded, as a list."""
    wavs = batch.sig.data
    return [wavs[i, : n * DIM].view(n, DIM) for i, n in enumerate(FRAMES)]


def nll(log_probs_row, target):
    return -float(log_probs_row[target])


def log_softmax(x):
    return [v - math.log(sum(math.exp(u) for u in x)) for v in x]


def head_log_probs(head, vector):
    return log_softmax((head.weight.detach() @ vector).tolist())


def windows_of(n, size=4, hop=2):
    """Window starts covering n frames: every hop, plus one aligned to the end (segment_triplet + tail)."""
    if n <= size:
        return [(0, n)]
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [(s, s + size) for s in starts]


def reference_losses(batch, head):
    """Utterance NLL (batch mean) and eq. 3's segment NLL (sum per utterance, batch mean), by loops."""
    targets = batch.target.data.reshape(-1).tolist()
    utt, seg, seg_rows = [], [], []
    for frames, t in zip(utterance_frames(batch), targets):
        utt.append(nll(head_log_probs(head, frames.mean(0)), t))
        total = 0.0
        for s, e in windows_of(len(frames)):
            total += nll(head_log_probs(head, frames[s:e].mean(0)), t)
            seg_rows.append((frames[s:e].mean(0), t, min(len(frames), 4)))
        seg.append(total)
    return sum(utt) / len(utt), sum(seg) / len(seg), seg_rows


def test_utterance_brain_is_the_task_nll():
    brain, head = make_brain(UtteranceBrain)
    batch = make_batch()
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    utt, _, _ = reference_losses(batch, head)
    assert float(loss) == pytest.approx(utt, abs=1e-5)


def test_seg_triplet_segments_loss_is_the_papers_formula():
    spy = Spy()
    brain, head = make_brain(
        SegmentTripletBrain,
        segments=True,
        segment_nll_reduction="sum_per_utterance",
        triplet_loss=spy,
        triplet_on="segments",
        loss_weighting=MultiTaskLoss(0.1),
    )
    batch = make_batch()
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    utt, seg, rows = reference_losses(batch, head)
    assert float(loss) == pytest.approx(
        0.9 * (utt + seg) + 0.1 * spy.value, abs=1e-5
    )  # eq. 3, then (1 - a) L_SER + a Tri
    emb, labels, lengths, groups = spy.calls[0]
    assert len(emb) == len(rows)  # every window, the end-aligned tails included
    torch.testing.assert_close(emb, torch.stack([r[0] for r in rows]))
    assert labels.tolist() == [r[1] for r in rows] and lengths.tolist() == [r[2] for r in rows]


def test_seg_triplet_on_utterances_gets_embeddings_and_frame_counts():
    spy = Spy()
    brain, head = make_brain(
        SegmentTripletBrain, segments=True, triplet_loss=spy, triplet_on="utterance", loss_weighting=MultiTaskLoss(None)
    )
    batch = make_batch()
    brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    emb, labels, lengths = spy.calls[0]
    torch.testing.assert_close(emb, torch.stack([f.mean(0) for f in utterance_frames(batch)]))
    assert lengths.tolist() == FRAMES and labels.tolist() == batch.target.data.reshape(-1).tolist()


def test_segment_decision_is_recorded_at_evaluation():
    brain, head = make_brain(SegmentBrain, segments=True)
    batch = make_batch()
    brain.on_stage_start(sb.Stage.VALID)
    brain.evaluate_batch(batch, sb.Stage.VALID)
    recorded = brain._outputs[0]
    for i, frames in enumerate(utterance_frames(batch)):
        posteriors = [
            [math.exp(v) for v in head_log_probs(head, frames[s:e].mean(0))] for s, e in windows_of(len(frames))
        ]
        best = max(posteriors, key=max)  # the most confident segment decides
        assert recorded[i].tolist() == pytest.approx(best, abs=1e-5)


def test_triplet_on_utterances_is_weighted_with_the_nll():
    spy = Spy()
    brain, head = make_brain(TripletBrain, triplet_loss=spy, loss_weighting=MultiTaskLoss(0.7))
    batch = make_batch()
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    utt, _, _ = reference_losses(batch, head)
    assert float(loss) == pytest.approx(0.3 * utt + 0.7 * spy.value, abs=1e-5)
    assert spy.calls[0][2].tolist() == FRAMES


def test_supcon_sees_both_views_with_replicated_labels():
    class Doubler(torch.nn.Module):
        """An augmenter that appends a scaled copy, as SpeechBrain's Augmenter(concat_original=True)."""

        def forward(self, wavs, lens):
            return torch.cat([wavs, 0.5 * wavs]), torch.cat([lens, lens])

        def replicate_labels(self, labels):
            return torch.cat([labels, labels])

    spy = Spy()
    brain, head = make_brain(SupConBrain, supcon_loss=spy, wav_augment=Doubler(), loss_weighting=MultiTaskLoss(0.1))
    batch = make_batch()
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    targets = batch.target.data.reshape(-1).tolist()
    means = [f.mean(0) for f in utterance_frames(batch)]
    views = means + [0.5 * m for m in means]
    ce = sum(nll(head_log_probs(head, v), t) for v, t in zip(views, targets + targets)) / len(views)
    assert float(loss) == pytest.approx(0.9 * ce + 0.1 * spy.value, abs=1e-5)
    emb, labels = spy.calls[0]
    torch.testing.assert_close(emb, torch.stack(views))
    assert labels.tolist() == targets + targets
    assert brain.compute_forward(batch, sb.Stage.VALID).embeddings.shape[0] == len(
        targets
    )  # no augmentation at evaluation


def test_unlabelled_rows_are_predicted_not_scored():
    brain, head = make_brain(SegmentBrain, segments=True)
    batch = make_batch(targets=[0, UNLABELLED, 2, UNLABELLED, 1, 0])
    brain.on_stage_start(sb.Stage.TEST)
    loss = brain.evaluate_batch(batch, sb.Stage.TEST)
    assert len(brain._outputs[0]) == 6 and brain._ids == [f"u{i}" for i in range(6)]
    frames = utterance_frames(batch)
    labelled = [(f, t) for f, t in zip(frames, batch.target.data.reshape(-1).tolist()) if t != UNLABELLED]
    expected = sum(nll(head_log_probs(head, f.mean(0)), t) for f, t in labelled) / len(labelled)
    assert float(loss) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "brain_class, values, message",
    [
        (SegmentTripletBrain, {"triplet_loss": 1, "loss_weighting": 1, "triplet_on": "segment"}, "triplet_on must be"),
        (TripletBrain, {"triplet_loss": 1, "supcon_loss": 1, "loss_weighting": 1}, "name triplet_loss and supcon_loss"),
        (UtteranceBrain, {"triplet_loss": 1}, "triplet_loss is not read by UtteranceBrain"),
        (SupConBrain, {"supcon_loss": 1}, "SupConBrain needs wav_augment, loss_weighting"),
        (UtteranceBrain, {"lr_annealing_on": "accuracy"}, "lr_annealing_on must be one of error, loss, not 'accuracy'"),
    ],
)
def test_configuration_errors_are_raised_before_anything_is_built(brain_class, values, message):
    with pytest.raises(ValueError, match=message):
        brain_class.check_hparams({"task": 1, "model": 1, "opt_class": 1, "output_folder": "x", **values})


def test_reported_evaluation_is_batched_only_when_the_encoder_makes_it_exact(tiny_models, tmp_path):
    """Layer-norm front-end with an attention mask: valid's batch size; group norm: one utterance at a time (the YAMLs' 1)."""
    from types import SimpleNamespace

    from speechbrain_ext.nn.encoders import SSLEncoder

    hparams = {
        "test_dataloader_options": {"batch_size": 1, "num_workers": 0},
        "valid_dataloader_options": {"batch_size": 8},
    }
    for name, attention_mask, expected in (
        ("wav2vec2_large", True, 8),
        ("wav2vec2_large", False, 1),
        ("wav2vec2", True, 1),
    ):
        encoder = SSLEncoder(tiny_models[name], str(tmp_path / "hf"), attention_mask=attention_mask)
        options = UtteranceBrain.evaluation_loader_options(SimpleNamespace(model=torch.nn.Sequential(encoder)), hparams)
        assert options == {"batch_size": expected, "num_workers": 0}, (name, attention_mask)


# supcon_knn's learning-rate rule ---------------------------------------------
SUPCON_YAMLS = sorted(Path(__file__).resolve().parents[1].glob("recipes/*/hparams/supcon.yaml"))
# Validation losses: the best at epoch 1, never beaten for 40 epochs though every other epoch goes
# below the one before; then a new best at epoch 42, never beaten again.
LOSSES = [0.40] + [0.41, 0.405] * 20 + [0.30] + [0.31, 0.305] * 12
START_LR = 0.1


def supcon_schedule(yaml_path):
    """The YAML's annealing keys, built as the recipe builds them (nothing else of the YAML is built)."""
    values = plain_values(yaml_path, {"data_folder": "unused"})
    text = io.StringIO()
    YAML(typ="rt").dump({k: values[k] for k in ("lr_annealing_on", "lr_annealing", "lr_annealing_ssl")}, text)
    return load_hyperpyyaml(text.getvalue())


def papers_rule(losses, epochs=20):
    """1-based epochs at whose end supcon_knn lowers the rate: the loss "has not decreased for 20 consecutive epochs" below its best (counted anew after a reduction)."""
    best, since, lowered = math.inf, 0, []
    for epoch, loss in enumerate(losses, 1):
        if loss < best:
            best, since = loss, 0
        else:
            since += 1
        if since == epochs:
            lowered.append(epoch)
            since = 0
    return lowered


class NoCheckpoints:
    """Stands in for the checkpointer where no epoch needs saving (saving every epoch would cost seconds)."""

    def add_recoverable(self, name, obj):
        pass

    def save_and_keep_only(self, **kwargs):
        pass


def annealing_brain(save_folder=None, **schedule):
    """A Brain with both optimisers (encoder and head, SGD at START_LR), ``schedule``'s hparams and a checkpointer in ``save_folder``."""
    sgd = lambda params: torch.optim.SGD(params, lr=START_LR)  # noqa: E731
    brain, _ = make_brain(UtteranceBrain, ssl_opt_class=sgd, **schedule)
    brain.hparams.opt_class = sgd
    brain.checkpointer = (
        NoCheckpoints()
        if save_folder is None
        else Checkpointer(save_folder, recoverables={"model": brain.modules.model})
    )
    brain.init_optimizers()
    return brain


def run_epochs(brain, losses, first_epoch=1):
    """Validation epochs that report ``losses``; the (head, encoder) learning rates after each."""
    batch, rates = make_batch(), []
    for epoch, loss in enumerate(losses, first_epoch):
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.evaluate_batch(batch, sb.Stage.VALID)
        brain.on_stage_end(sb.Stage.VALID, loss, epoch)
        rates.append((brain.optimizer.param_groups[0]["lr"], brain.ssl_optimizer.param_groups[0]["lr"]))
    return rates


def test_supcon_lowers_both_rates_after_20_epochs_without_a_new_best_validation_loss(tmp_path):
    schedule = supcon_schedule(SUPCON_YAMLS[-1])
    assert [p.parts[-3] for p in SUPCON_YAMLS] == ["Custom", "FESC", "IEMOCAP", "MSP-IMPROV", "RAVDESS"]
    for other in map(supcon_schedule, SUPCON_YAMLS[:-1]):  # every corpus follows the same rule
        assert other["lr_annealing_on"] == schedule["lr_annealing_on"]
        for key in ("lr_annealing", "lr_annealing_ssl"):
            assert (other[key].func, other[key].keywords) == (schedule[key].func, schedule[key].keywords)
    factor = schedule["lr_annealing"].keywords["factor"]  # a stated choice: the paper gives none
    rates = run_epochs(annealing_brain(**schedule), LOSSES)
    expected = papers_rule(LOSSES)
    assert expected == [21, 41, 62]  # the 1 - UAR of these epochs is constant: watching it would lower at 61
    lowered = [
        epoch for epoch, (before, after) in enumerate(zip([(START_LR, START_LR)] + rates, rates), 1) if after != before
    ]
    assert lowered == expected
    for epoch, rate in enumerate(rates, 1):
        assert rate == pytest.approx((START_LR * factor ** sum(e <= epoch for e in expected),) * 2, rel=1e-12), epoch
    # NewBob as the YAMLs had it (patient 20, each epoch against the one before) lowers nothing in the first 41 epochs
    newbob = NewBobScheduler(initial_value=START_LR, annealing_factor=0.9, improvement_threshold=0.0025, patient=20)
    assert [newbob(loss)[1] for loss in LOSSES[:41]] == [START_LR] * 41
    assert papers_rule(LOSSES[:41]) == [21, 41]


def test_supcon_schedule_resumes_with_its_best_and_count(tmp_path):
    """Killed after epoch 30 (lowered at 21, 9 epochs since): the resumed run lowers at 41 as the whole run does."""
    schedule = supcon_schedule(SUPCON_YAMLS[-1])
    whole = run_epochs(annealing_brain(**schedule), LOSSES[:45])
    killed = annealing_brain(tmp_path, **schedule)
    checkpointer, killed.checkpointer = killed.checkpointer, NoCheckpoints()
    run_epochs(killed, LOSSES[:29])
    killed.checkpointer = checkpointer  # epoch 30 is checkpointed, then the run is killed
    run_epochs(killed, LOSSES[29:30], first_epoch=30)
    resumed = annealing_brain(tmp_path, **schedule)
    resumed.checkpointer.recover_if_possible()
    resumed.checkpointer = NoCheckpoints()
    assert resumed.optimizer.param_groups[0]["lr"] == whole[29][0] < START_LR
    assert (
        run_epochs(resumed, LOSSES[30:45], first_epoch=31) == whole[30:]
    )  # a fresh scheduler would lower at 51, not 41


class WatchSpy:
    """A SpeechBrain-style scheduler that records what it is given and keeps the rate."""

    def __init__(self):
        self.values = []

    def __call__(self, value):
        self.values.append(value)
        return START_LR, START_LR


@pytest.mark.parametrize("watched", [None, "error", "loss"])
def test_annealing_watches_one_minus_uar_unless_the_yaml_names_the_loss(watched):
    spy = WatchSpy()
    brain = annealing_brain(lr_annealing=spy, **({} if watched is None else {"lr_annealing_on": watched}))
    batch = make_batch()
    run_epochs(brain, [0.73])
    uar = balanced_accuracy_score(batch.target.data.reshape(-1).tolist(), brain._outputs[0].argmax(-1).tolist())
    assert spy.values == pytest.approx(
        [0.73 if watched == "loss" else 1.0 - uar], abs=1e-4
    )  # the logged UAR has 4 decimals
