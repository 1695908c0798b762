"""Recipe runs in forked children of one process that imported the libraries once.

Each recipe run of the test suite would otherwise spend about 5 s importing
torch, SpeechBrain and transformers. A ``forkserver`` preloads them; every run
is still a process of its own (one task per child), started with the
command line a user would type, with its own stdout, stderr and exit code.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

PRELOAD = [
    "torch",
    "speechbrain",
    "transformers",
    "speechbrain_ext.training.recipe",
    "speechbrain_ext.training.brains",
    "speechbrain_ext.nn.encoders",
    "speechbrain_ext.nn.text",
]


def run_command(cmd: list[str], cwd: str, threads: int = 1) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` (``cmd``) in this process, as ``python`` would; return its exit code, output and ``seconds``."""
    import time

    import torch

    start = time.time()
    torch.set_num_threads(threads)
    logs = [tempfile.NamedTemporaryFile(mode="w+", delete=False, suffix=name) for name in (".out", ".err")]
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(logs[0].fileno(), 1)
    os.dup2(logs[1].fileno(), 2)
    os.chdir(cwd)
    sys.argv = cmd[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(cmd[1])))  # as `python script.py` does
    code = 0
    try:
        runpy.run_path(cmd[1], run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)  # as the interpreter prints a SystemExit message
    except BaseException:  # noqa: BLE001 - reported as the script's own failure would be
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = (open(log.name, encoding="utf-8", errors="replace").read() for log in logs)
    for log in logs:
        os.unlink(log.name)
    proc = subprocess.CompletedProcess(cmd, code, out, err)
    proc.seconds = time.time() - start
    return proc


@contextmanager
def recipe_pool(workers: int = 2, threads: int = 1):
    """A pool of ``workers`` forked runners; each run gets a fresh child (pass ``threads`` on to :func:`run_command` as well)."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONUNBUFFERED")}
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, max_tasks_per_child=1) as pool:
            yield pool
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
