"""FLEA (flea_hubert): the chain of stages on a synthetic IEMOCAP fold, pseudo-labels, masked-prediction pre-training."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from speechbrain_ext.methods.flea.frame_labels import fit_kmeans, iter_shards, load_labels
from speechbrain_ext.methods.flea.pretraining import MaskedPrediction
from tests.conftest import REPO, ROWS, flea_command


@pytest.fixture(scope="module")
def flea(recipe_runs):
    """The chain's output folder (trained in the session's recipe runs, conftest)."""
    return recipe_runs.result("flea")[1]


def test_every_stage_writes_its_outputs(flea):
    row = next(r for r in ROWS if r["hparams"] == "recipes/IEMOCAP/hparams/flea.yaml")
    assert not [name for name in row["outputs"].split() if not (flea / name).is_file()]  # what the registry promises
    for name in (
        "tapt/frames/index.json",
        "tapt/kmeans.joblib",
        "tapt/labels.npz",
        "tapt/pretraining/checkpoint.pt",
        "tapt/hubert/model.safetensors",
        "tapt_finetune/test_report.json",
        "tapt_finetune_hubert/config.json",
        "L2_frames/index.json",
        "L2_k4/pseudo_labels/kmeans.joblib",
        "L2_k4/pseudo_labels/labels.npz",
        "L2_k4/pseudo_labels/pseudo_labels.json",
        "L2_k4/cpt/hubert/pretraining.json",
        "run/finetune/test_report.json",
        "run/test_report.json",
        "run/flea_summary.json",
        "run/chain_complete.json",
    ):
        assert (flea / name).is_file(), name
    run = flea / "run"
    assert (run / "test_report.json").read_text() == (run / "finetune" / "test_report.json").read_text()
    hparams = (run / "finetune" / "hyperparams.yaml").read_text()
    assert (
        f"ssl_hub: {flea / 'L2_k4' / 'cpt' / 'hubert'}" in hparams and "kind: attention" in hparams
    )  # CPT-HuBERT, attention pooling
    assert "kind: mean" in (flea / "tapt_finetune" / "hyperparams.yaml").read_text()  # the TAPT row: average pooling
    summary = json.loads((run / "flea_summary.json").read_text())
    assert summary["cpt"]["result"]["update"] == 10 and summary["tapt"]["result"]["update"] == 10


def test_a_second_run_skips_every_stage(flea, tiny_models, registry_corpora):
    before = {p: p.stat().st_mtime for p in flea.rglob("*") if p.is_file()}
    (flea / "run" / "chain_complete.json").unlink()  # so that each stage is asked, not only the chain
    proc = subprocess.run(
        flea_command(flea, tiny_models, registry_corpora["IEMOCAP"]), capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("tapt", "tapt_finetune", "pseudo_labels", "cpt", "finetune"):
        assert f"== FLEA {stage}: done, skipped" in proc.stdout, stage
    changed = [p for p, mtime in before.items() if p.exists() and p.stat().st_mtime != mtime and "prep" not in p.parts]
    assert sorted(p.name for p in changed) <= [
        "flea_summary.json",
        "test_predictions.csv",
        "test_report.json",
        "test_report.md",
        "valid_predictions.csv",
        "valid_report.json",
        "valid_report.md",
    ]
    again = subprocess.run(
        flea_command(flea, tiny_models, registry_corpora["IEMOCAP"]), capture_output=True, text=True, cwd=REPO
    )
    assert "every stage skipped" in again.stdout


def test_pseudo_labels_never_see_the_test_speakers(flea, registry_corpora):
    info = json.loads((flea / "L2_k4" / "pseudo_labels" / "pseudo_labels.json").read_text())
    prep = flea / "prep"
    assert info["manifests"] == [str(prep / "train.json"), str(prep / "valid.json")]
    index = json.loads((flea / "L2_frames" / "index.json").read_text())
    read = {u["path"] for u in index["utts"]}
    split_paths = {
        s: {e["wav"] for e in json.loads((prep / f"{s}.json").read_text()).values()} for s in ("train", "valid", "test")
    }
    data_root = str(registry_corpora["IEMOCAP"])
    split_paths = {s: {p.replace("{data_root}", data_root) for p in paths} for s, paths in split_paths.items()}
    assert read == split_paths["train"] | split_paths["valid"] and not read & split_paths["test"]
    assert info["frame_rate"] == 50.0 and info["utterances"] == len(read)


def test_kmeans_labels_are_sklearn_predictions_and_reproducible(flea):
    import joblib

    folder = flea / "L2_k4" / "pseudo_labels"
    kmeans = joblib.load(folder / "kmeans.joblib")
    labels = load_labels(folder / "labels.npz")
    for rows, frames in iter_shards(flea / "L2_frames"):
        predicted = kmeans.predict(frames)
        for row in rows:
            assert np.array_equal(labels[row["id"]], predicted[row["offset"] : row["offset"] + row["frames"]])
    again = fit_kmeans(flea / "L2_frames", 4, seed=1986, max_fit_frames=5000)
    np.testing.assert_array_equal(again.cluster_centers_, kmeans.cluster_centers_)  # same seed, same clusters


def test_masked_prediction_loss_equals_a_hand_computation(tiny_models):
    """Cosine logits over the temperature, cross-entropy over masked frames only: a loop written from the definition."""
    torch.manual_seed(0)
    model = MaskedPrediction(tiny_models["hubert"], n_clusters=6).eval()
    wavs = torch.randn(2, 16000) * 0.1
    mask = model.mask(16000, 2, np.random.default_rng(1))
    labels = torch.randint(0, 6, mask.shape)
    with torch.no_grad():
        out = model(wavs, labels, mask)
        hidden = model.hubert(wavs, mask_time_indices=mask).last_hidden_state
    weight, bias, embeddings = model.final_proj.weight, model.final_proj.bias, model.label_embeddings
    losses, unmasked = [], 0
    for b in range(2):
        for t in range(mask.shape[1]):
            if not mask[b, t]:
                unmasked += 1
                continue
            projected = weight @ hidden[b, t] + bias
            logits = torch.stack([projected @ e / (projected.norm() * e.norm()) / 0.1 for e in embeddings])
            losses.append(-(logits[labels[b, t]] - torch.logsumexp(logits, dim=0)))
    assert 0 < len(losses) and unmasked > 0  # the unmasked frames add nothing (alpha = 1)
    assert float(out.masked_ce) == pytest.approx(float(torch.stack(losses).mean()), rel=1e-5)


PRETRAIN_SCRIPT = """
import json, sys
from speechbrain_ext.methods.flea.frame_labels import load_labels
from speechbrain_ext.methods.flea.pretraining import manifest_items
from speechbrain_ext.methods.flea.trainer import pretrain
flea, data_root, source, folder, out = sys.argv[1:6]
labels = load_labels(flea + "/L2_k4/pseudo_labels/labels.npz")
train = manifest_items([flea + "/prep/train.json"], data_root)
result = pretrain(source, train, labels, 4, folder, out, 50.0, trainer_options={"max_updates": 40, "warmup_updates": 5, "checkpoint_every": 5, "max_batch_seconds": 12.0, "seed": 7}, progress=False)
print("RESULT" + json.dumps(result))
"""


def test_cpt_resumes_after_a_kill(flea, tiny_models, registry_corpora, tmp_path):
    """Killed in the middle, the same command resumes from the last step checkpoint, redoes only the updates after it, and
    ends with the uninterrupted run's weights; the saved folder loads with ``HubertModel.from_pretrained`` and holds the
    trainer's parameters."""
    from transformers import HubertModel

    def command(name):
        return [
            sys.executable,
            "-c",
            PRETRAIN_SCRIPT,
            str(flea),
            str(registry_corpora["IEMOCAP"]),
            tiny_models["hubert"],
            str(tmp_path / name),
            str(tmp_path / f"{name}_hubert"),
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "killed" / "updates.log"
    victim = subprocess.Popen(
        command("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 13):
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = len(log.read_text().splitlines())
    assert 13 <= done_before < 40, done_before
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["state"]["update"]
    assert saved == done_before - done_before % 5  # the last checkpoint before the kill
    resumed = subprocess.run(command("killed"), capture_output=True, text=True, cwd=REPO, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    updates = [int(line.split()[1]) for line in log.read_text().splitlines()]
    assert updates[done_before:] == list(range(saved + 1, 41))  # only the updates after the checkpoint are done again
    straight = subprocess.run(command("straight"), capture_output=True, text=True, cwd=REPO, env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed_model = HubertModel.from_pretrained(tmp_path / "killed_hubert").state_dict()
    straight_model = HubertModel.from_pretrained(tmp_path / "straight_hubert").state_dict()
    trainer = {
        k[len("hubert.") :]: v
        for k, v in torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"].items()
        if k.startswith("hubert.")
    }
    assert killed_model.keys() == trainer.keys()
    for name, value in killed_model.items():
        torch.testing.assert_close(value, trainer[name], atol=1e-6, rtol=0)
        torch.testing.assert_close(value, straight_model[name], atol=1e-6, rtol=0)
    record = json.loads((tmp_path / "killed_hubert" / "pretraining.json").read_text())
    assert (
        record["n_clusters"] == 4 and record["base_model"] is None
    )  # started from a local folder that records no hub id


def test_masked_prediction_learns_on_held_out_frames(recipe_runs):
    """300 updates on the synthetic IEMOCAP fold (tests/cpt_learning.py): held-out speakers' masked frames are predicted
    above chance (1/k) and above the most frequent label, and their cross-entropy falls well below the untrained model's."""
    result = json.loads((recipe_runs.result("cpt_learning")[1] / "result.json").read_text())
    print(
        f"\nmasked-frame accuracy on held-out speakers: {result['before']['accuracy']:.3f} -> {result['after']['accuracy']:.3f} (majority {result['majority_share']:.3f})"
    )
    assert result["after"]["accuracy"] > max(1 / result["clusters"], result["majority_share"]) + 0.04
    assert result["after"]["masked_ce"] < result["before"]["masked_ce"] - 0.3


def test_flea_table_from_run_reports(tmp_path):
    """The Table-1 sweep's table, filled from the runs' reports (mean over folds)."""
    for fold, uar in ((1, 0.70), (2, 0.80)):
        for layer, clusters, pooling, bonus in (
            (9, 50, "attention", 0.02),
            (9, 50, "mean", 0.0),
            (6, 100, "attention", -0.01),
        ):
            run = tmp_path / "loso" / f"fold_{fold}" / "valid_F" / "seed_1986" / f"L{layer}_k{clusters}_{pooling}"
            run.mkdir(parents=True)
            (run / "test_report.json").write_text(json.dumps({"UAR": uar + bonus, "WA": uar + bonus - 0.01}))
    proc = subprocess.run(
        [sys.executable, "recipes/IEMOCAP/flea_table.py", str(tmp_path)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 9 | 50 | 75.0/74.0 (2) | 77.0/76.0 (2) |" in proc.stdout
    assert "| 6 | 100 | - | 74.0/73.0 (2) |" in proc.stdout


def test_misspelt_override_fails_before_the_chain(tmp_path):
    """A key the FLEA YAML lacks is one line naming the close match; nothing is prepared."""
    from speechbrain_ext.methods.flea.chain import main

    prepared = []
    argv = [
        str(REPO / "recipes/IEMOCAP/hparams/flea.yaml"),
        f"--data_folder={tmp_path}",
        f"--fold_folder={tmp_path / 'fold'}",
        "--label_clustres=4",
    ]
    with pytest.raises(SystemExit, match=r"--label_clustres \(did you mean --label_clusters"):
        main(prepared.append, REPO / "recipes/IEMOCAP/train.py", argv)
    assert prepared == [] and not (tmp_path / "fold").exists()
