"""A recipe killed with SIGKILL (mid-epoch, and while writing a checkpoint) and started again with the same command ends as if never killed.

The mid-epoch case also finds a newer, corrupt checkpoint beside the intact one, which recovery must skip.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tests.conftest import RECIPE_OVERRIDES, REPO

# Runs train.py as a user would, after arming one SIGKILL: at the Nth training batch ("batch"), or at the Nth
# file torch.save writes into the second checkpoint being written ("save").
KILLER = """
import os, runpy, signal, sys
import speechbrain, torch
target, n = sys.argv.pop(1), int(sys.argv.pop(1))
calls, folders = [0], []
def kill_at_batch(original):
    def fit_batch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return fit_batch
def kill_in_checkpoint(original):
    def save(obj, path, *args, **kwargs):
        folders.append(os.path.dirname(str(path)))
        if len(set(folders)) == 2 and folders.count(folders[-1]) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(obj, path, *args, **kwargs)
    return save
if target == "batch":
    speechbrain.core.Brain.fit_batch = kill_at_batch(speechbrain.core.Brain.fit_batch)
else:
    torch.save = kill_in_checkpoint(torch.save)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def command(corpus, tiny_wav2vec2: str, folder, kill: tuple[str, int] | None = None) -> list[str]:
    prefix = [sys.executable, "-c", KILLER, kill[0], str(kill[1])] if kill else [sys.executable]
    return [
        *prefix,
        str(REPO / "recipes/RAVDESS/train.py"),
        str(REPO / "recipes/RAVDESS/hparams/baseline.yaml"),
        f"--data_folder={corpus}",
        f"--output_folder={folder}",
        f"--ssl_hub={tiny_wav2vec2}",
        *RECIPE_OVERRIDES,
        "--number_of_epochs=2",
    ]


def run(cmd, expect_killed: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600
    )
    if expect_killed:
        assert proc.returncode == -9, proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def plant_corrupt_newer_copy(checkpoint: Path) -> Path:
    """A copy of ``checkpoint`` that is newer and whose model file was cut short (a disk fault, a partial copy)."""
    copy = checkpoint.with_name(checkpoint.name + "-newer")
    shutil.copytree(checkpoint, copy)
    meta = yaml.safe_load((copy / "CKPT.yaml").read_text())
    meta["unixtime"] += 60
    (copy / "CKPT.yaml").write_text(yaml.dump(meta))
    data = (copy / "model.ckpt").read_bytes()
    (copy / "model.ckpt").write_bytes(data[: len(data) // 2])
    return copy


def probabilities(folder) -> np.ndarray:
    rows = list(csv.DictReader((folder / "test_predictions.csv").open()))
    return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


def test_killed_runs_resume_to_the_uninterrupted_result(registry_runs, registry_corpora, tiny_models, tmp_path):
    corpus, tiny = registry_corpora["RAVDESS"], tiny_models["wav2vec2"]
    whole = registry_runs["recipes/RAVDESS/hparams/baseline.yaml"][
        "folder"
    ]  # the same command (two epochs), never killed
    assert "\nnumber_of_epochs: 2\n" in (whole / "hyperparams.yaml").read_text()
    reference = probabilities(whole)
    n_batches = -(-len(json.loads((whole / "prep" / "train.json").read_text())) // 8)  # batch size 8 (RECIPE_OVERRIDES)
    # the second batch of epoch 2; the second file of epoch 2's checkpoint
    for name, kill in (("mid_epoch", ("batch", n_batches + 2)), ("in_checkpoint", ("save", 2))):
        folder = tmp_path / name
        run(command(corpus, tiny, folder, kill), expect_killed=True)
        checkpoints = sorted((folder / "save").glob("CKPT+*"))
        assert len(checkpoints) == 1  # the epoch-1 checkpoint only: epoch 2's was never finished (and never listed)
        corrupt = plant_corrupt_newer_copy(checkpoints[0]) if name == "mid_epoch" else None
        resumed = run(command(corpus, tiny, folder))
        assert "Took over the run lock" in resumed.stdout  # the killed run's lock
        if corrupt is not None:  # skipped with a warning naming the file; the intact epoch-1 checkpoint is resumed
            assert f"{corrupt / 'model.ckpt'} (checksum mismatch)" in resumed.stderr + resumed.stdout
        epochs = re.findall(r"^epoch: (\d+),", (folder / "train_log.txt").read_text(), re.M)
        # epoch 1 is never redone; epoch 2 is logged once, or twice when the kill came after its log line (in its checkpoint)
        assert epochs == (["1", "2"] if name == "mid_epoch" else ["1", "2", "2"]), name
        (_finished,) = [
            c for c in sorted((folder / "save").glob("CKPT+*")) if (c / "counter.ckpt").read_text().strip() == "2"
        ]
        assert not list((folder / "save" / ".staging").glob("*"))  # the interrupted checkpoint's files are gone
        np.testing.assert_allclose(probabilities(folder), reference, atol=1e-6, err_msg=name)
