"""Faults a training user meets: corrupt checkpoints, two runs in one folder, mistyped local model paths, collectives that time out."""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from speechbrain_ext.training.checkpoints import Checkpointer, CorruptCheckpointsError
from speechbrain_ext.utils.fileio import RunLock
from tests.conftest import REPO


class Counter:
    """A recoverable integer (the epoch counter's stand-in)."""

    def __init__(self):
        self.value = 0


def checkpointer(folder, model, counter):
    ckpt = Checkpointer(folder, recoverables={"model": model})
    ckpt.add_recoverable(
        "counter",
        counter,
        custom_save_hook=lambda c, p: open(p, "w").write(str(c.value)),
        custom_load_hook=lambda c, p, *a: setattr(c, "value", int(open(p).read())),
    )
    return ckpt


def test_meta_holds_each_files_sha256(tmp_path):
    model, counter = torch.nn.Linear(3, 2), Counter()
    saved = checkpointer(tmp_path, model, counter).save_checkpoint(meta={"UAR": 0.5})
    meta = yaml.safe_load((saved.path / "CKPT.yaml").read_text())
    files = sorted(p.name for p in saved.path.iterdir() if p.name != "CKPT.yaml")
    assert sorted(meta["checksums"]) == files == ["counter.ckpt", "model.ckpt", "random_state.ckpt"]
    for name in files:
        assert meta["checksums"][name] == hashlib.sha256((saved.path / name).read_bytes()).hexdigest()


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    model, counter = torch.nn.Linear(3, 2), Counter()
    ckpt = checkpointer(tmp_path, model, counter)
    weights = {}
    for epoch in (1, 2):
        counter.value = epoch
        torch.nn.init.constant_(model.weight, float(epoch))
        weights[epoch] = model.weight.detach().clone()
        ckpt.save_checkpoint(meta={"epoch": epoch})
        time.sleep(0.01)  # distinct recency
    newest = max(tmp_path.glob("CKPT+*"), key=lambda p: yaml.safe_load((p / "CKPT.yaml").read_text())["unixtime"])
    data = (newest / "model.ckpt").read_bytes()
    (newest / "model.ckpt").write_bytes(data[: len(data) // 2])  # a partial copy

    fresh_model, fresh_counter = torch.nn.Linear(3, 2), Counter()
    with caplog.at_level(logging.WARNING):
        recovered = checkpointer(tmp_path, fresh_model, fresh_counter).recover_if_possible()
    assert recovered.meta["epoch"] == 1 and fresh_counter.value == 1
    assert torch.equal(fresh_model.weight, weights[1])
    assert [
        r
        for r in caplog.records
        if str(newest / "model.ckpt") in r.getMessage() and "checksum mismatch" in r.getMessage()
    ]


def test_no_intact_checkpoint_stops_naming_the_files(tmp_path):
    model, counter = torch.nn.Linear(3, 2), Counter()
    saved = checkpointer(tmp_path, model, counter).save_checkpoint()
    (saved.path / "counter.ckpt").write_text("7")  # same size, other bytes
    with pytest.raises(CorruptCheckpointsError) as err:
        checkpointer(tmp_path, model, counter).recover_if_possible()
    message = str(err.value)
    assert "\n" not in message and str(saved.path / "counter.ckpt") in message and f"remove {tmp_path}" in message


def test_checkpoints_without_checksums_are_trusted(tmp_path):
    """Runs saved before checksums existed still resume."""
    model, counter = torch.nn.Linear(3, 2), Counter()
    saved = checkpointer(tmp_path, model, counter).save_checkpoint(meta={"epoch": 1})
    meta = yaml.safe_load((saved.path / "CKPT.yaml").read_text())
    del meta["checksums"]
    (saved.path / "CKPT.yaml").write_text(yaml.dump(meta))
    assert checkpointer(tmp_path, model, counter).recover_if_possible().meta["epoch"] == 1


HOLDER = "import sys, time; from speechbrain_ext.utils.fileio import RunLock; lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)"


def test_second_live_run_in_a_folder_is_refused_then_takes_over_after_a_kill(tmp_path):
    """A live run holds the folder (as run_recipe takes it); the recipe refuses to start there; after SIGKILL the lock is taken over."""
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cmd = [
            sys.executable,
            str(REPO / "recipes/RAVDESS/train.py"),
            str(REPO / "recipes/RAVDESS/hparams/baseline.yaml"),
            f"--data_folder={tmp_path}",
            f"--output_folder={folder}",
            "--ssl_hub=no-such-org/no-such-model",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300
        )
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert f"{folder} is in use by another run" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert (
            not (folder / "prep").exists() and "no-such-model" not in proc.stderr
        )  # refused before preparing or loading anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(folder).acquire()
    assert lock.previous["pid"] == holder.pid  # the killed run's lock, taken over
    lock.release()
    assert (folder / ".run.lock").read_text() == ""  # a clean end leaves no holder behind


def test_collective_timeout_names_each_ranks_last_collectives(tmp_path):
    """Two gloo ranks where rank 1 skips a broadcast: the run fails after the timeout, and each rank logs its last two collectives."""
    script = tmp_path / "mismatch.py"
    script.write_text(
        "import logging, torch\n"
        "from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast\n"
        "from speechbrain_ext.training.distributed import init_process_group\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "init_process_group({'distributed_backend': 'gloo'}, timeout_minutes=0.05)\n"
        "ddp_barrier()\n"
        "if torch.distributed.get_rank() == 0:\n"
        "    ddp_broadcast('only rank 0 asks')\n"
        "ddp_barrier()\n"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    failed = [
        line
        for line in output.splitlines()
        if "collective" in line and "failed" in line and "the collective before it was" in line
    ]
    assert any("rank 0: collective broadcast_object_list from" in line and f"{script}:8" in line for line in failed), (
        output[-4000:]
    )
    assert any("rank 1: collective barrier from" in line and f"{script}:9" in line for line in failed), output[-4000:]


def test_missing_local_model_folder_fails_in_one_line_before_anything(tmp_path):
    source = "/nonexistent/models/hubert"
    cmd = [
        sys.executable,
        str(REPO / "recipes/RAVDESS/train.py"),
        str(REPO / "recipes/RAVDESS/hparams/baseline.yaml"),
        f"--data_folder={tmp_path}",
        f"--output_folder={tmp_path / 'out'}",
        f"--ssl_hub={source}",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and f"ssl_hub: {source!r}" in errors[0] and "not found" in errors[0]
    assert not (tmp_path / "out").exists()  # nothing prepared, no folder made


@pytest.mark.parametrize(
    "source, local",
    [
        ("/abs/missing", True),
        ("./rel/missing", True),
        ("~/no-such-model-dir/x", True),
        ("a/b/c", True),
        ("facebook/wav2vec2-base", False),
        ("wav2vec2-base", False),
    ],
)
def test_what_counts_as_a_missing_local_path(tmp_path, monkeypatch, source, local):
    from speechbrain_ext.utils.fileio import missing_local_sources

    monkeypatch.chdir(tmp_path)
    assert missing_local_sources({"ssl_hub": source}) == ([f"ssl_hub: {source!r}"] if local else [])
    (tmp_path / "models").mkdir()  # an existing parent folder makes a two-part name a path
    assert missing_local_sources({"text_hub": "models/bert"}) == ["text_hub: 'models/bert'"]
    (tmp_path / "models" / "bert").mkdir()
    assert missing_local_sources({"text_hub": "models/bert", "ssl_hub": str(tmp_path)}) == []


def test_lock_file_names_its_holder(tmp_path):
    with RunLock(tmp_path) as lock:
        holder = json.loads((tmp_path / ".run.lock").read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == " ".join(sys.argv) and lock.previous is None
