"""A recipe under torchrun with two CPU processes (gloo): what multi-GPU training relies on.

supcon.yaml covers the most shared work: preparation, the augmentation files,
a post-training stage (kNN) and reports, all of which must happen once.
triplet_seg.yaml over three epochs deletes checkpoints that are neither the
best nor the newest: the path where the ranks once disagreed and hung
(``tests/stress_ddp.py`` runs it many times).
"""

import csv
import json
import os
import re
import subprocess
import sys

import pytest
from sklearn.metrics import balanced_accuracy_score

from tests.conftest import RECIPE_OVERRIDES, REPO


def launch(
    corpus,
    tiny_wav2vec2: str,
    folder,
    epochs: int,
    method: str = "supcon",
    extra: tuple = ("--knn_max_k=8", "--max_audio_seconds=2.0"),
) -> str:
    """``torchrun --standalone --nproc_per_node=2 train.py <method>.yaml ... --distributed_backend=gloo``; returns what both processes printed."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "recipes/RAVDESS/train.py"),
        str(REPO / f"recipes/RAVDESS/hparams/{method}.yaml"),
        f"--data_folder={corpus}",
        f"--output_folder={folder}",
        f"--ssl_hub={tiny_wav2vec2}",
        *RECIPE_OVERRIDES,
        f"--number_of_epochs={epochs}",
        *extra,
        "--distributed_backend=gloo",
        "--ddp_timeout=10",  # minutes: a runner option no YAML holds
        "--device=cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def test_two_processes_prepare_once_gather_every_utterance_and_resume(registry_corpora, tiny_models, tmp_path):
    corpus, folder = registry_corpora["RAVDESS"], tmp_path / "ddp"
    first = launch(corpus, tiny_models["wav2vec2"], folder, epochs=1)
    assert first.count("| train |") == 1  # the preparation's table: prepared by one process
    assert (
        sum(line.startswith("| test | ") and "%" not in line for line in first.splitlines()) == 2
    )  # that table's test row, and the test report's row
    for split in ("valid", "test"):
        manifest = list(json.loads((folder / "prep" / f"{split}.json").read_text()))
        rows = list(csv.DictReader((folder / f"{split}_predictions.csv").open()))
        ids = [r["id"] for r in rows]
        assert len(set(ids)) == len(ids) and sorted(ids) == sorted(
            manifest
        )  # each process scored half: no padding duplicates, none dropped
    rows = list(csv.DictReader((folder / "valid_predictions.csv").open()))
    logged = float(
        re.search(r"^epoch: 1,.*valid UAR: ([0-9.e+-]+)", (folder / "train_log.txt").read_text(), re.M).group(1)
    )
    assert logged == pytest.approx(
        balanced_accuracy_score([r["true"] for r in rows], [r["predicted"] for r in rows]), rel=5e-3
    )
    assert (
        json.loads((folder / "knn_summary.json").read_text())["tuned_on"] == "valid"
    )  # the post-training stage ran (on the main process)
    assert len(list((folder / "augmentation").glob("*.csv"))) == 2

    second = launch(corpus, tiny_models["wav2vec2"], folder, epochs=2)  # the same command with one more epoch resumes
    assert "Going into epoch 1" not in second and "Going into epoch 2" in second
    epochs = re.findall(r"^epoch: (\d+),", (folder / "train_log.txt").read_text(), re.M)
    assert epochs == ["1", "2"]


def test_keep_best_deletion_under_two_processes(registry_corpora, tiny_models, tmp_path):
    """Three epochs keep the best and the newest checkpoint: at least one is deleted, every rank leaves the same folder, the run exits cleanly."""
    folder = tmp_path / "triplet_seg"
    output = launch(
        registry_corpora["RAVDESS"],
        tiny_models["wav2vec2"],
        folder,
        epochs=3,
        method="triplet_seg",
        extra=("--max_audio_seconds=2.0",),
    )
    assert (folder / "log.txt").read_text().count("Deleted checkpoint in") >= 1  # by the main process alone
    assert re.findall(r"^epoch: (\d+),", (folder / "train_log.txt").read_text(), re.M) == ["1", "2", "3"]
    kept = sorted((folder / "save").glob("CKPT+*"))
    assert 1 <= len(kept) <= 2 and not list((folder / "save" / ".staging").glob("*"))
    assert "terminate called" not in output  # the process group is destroyed before exit
