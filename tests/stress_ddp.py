#!/usr/bin/env python3
"""DDP stress: many torchrun runs (gloo, two CPU processes) of five recipes, each under a watchdog.

    python tests/stress_ddp.py --runs 20 --out stress_out
    python tests/stress_ddp.py --runs 3 --recipes triplet_seg,bayes --stall 90

Outside ``make test`` (about 100 runs). Corpora are synthetic, of a seed the
test suite does not use; models are the suite's tiny random ones. Each run
trains two epochs, so the second checkpoint triggers the keep-best deletion
under DDP. A run counts as:

- ``clean``: exit 0 and its test report written;
- ``hang``: nothing printed and no log file grew for ``--stall`` seconds;
  the watchdog then sends SIGUSR1 to every rank, whose ``faulthandler``
  (registered by :func:`speechbrain_ext.training.distributed.init_process_group`)
  prints every thread's Python stack into ``<out>/<recipe>_<i>.log``, and
  kills the run;
- ``failed``: any non-zero exit (the log keeps both ranks' output).

The summary table is printed and written to ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.synthetic import generate_corpus  # noqa: E402
from speechbrain_ext.testing.tiny_models import write_tiny_models  # noqa: E402
from tests.conftest import SYNTHETIC, TRAIN_ROWS, registry_command, row_folder  # noqa: E402

# recipe name -> (registry row, overrides on top of the row's): supcon adds the kNN stage, bayes the Bayesian one
RECIPES = {
    "triplet_seg": ("recipes/RAVDESS/hparams/triplet_seg.yaml", ()),
    "supcon_knn": ("recipes/RAVDESS/hparams/supcon.yaml", ("--knn_eval=True",)),
    "bayes": ("recipes/RAVDESS/hparams/bayes.yaml", ()),
    "segment_regressor": ("recipes/Hume-Prosody/hparams/segments.yaml", ()),
    "text": ("recipes/Hume-Prosody/hparams/text.yaml", ()),
}
SEED = 7  # the suite's corpora use seeds 0-2


def ranks_of(pid: int) -> list[int]:
    """The worker processes torchrun started (its children)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def watch(cmd: list[str], log_path: Path, folder: Path, stall: float, env: dict) -> tuple[str, float]:
    """Run ``cmd``; return (``clean`` | ``hang`` | ``failed``, seconds)."""
    start, last = time.time(), [time.time()]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env, start_new_session=True
        )

        def pump():
            for line in proc.stdout:
                log.write(line)
                log.flush()
                last[0] = time.time()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while proc.poll() is None:
            time.sleep(1)
            grown = max((p.stat().st_mtime for p in folder.rglob("*.txt") if p.is_file()), default=0)
            if time.time() - max(last[0], grown) > stall:
                log.write(f"\n### watchdog: no progress for {stall:.0f} s; dumping every rank's stack\n")
                log.flush()
                for rank in ranks_of(proc.pid):
                    os.kill(rank, signal.SIGUSR1)
                time.sleep(5)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                reader.join(timeout=10)
                return "hang", time.time() - start
        reader.join(timeout=10)
    clean = proc.returncode == 0 and (folder / "valid_report.json").is_file()
    return ("clean" if clean else "failed"), time.time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per recipe")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--stall", type=float, default=120.0, help="seconds without output before a run counts as hung")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="stress_ddp_out")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.recipes.split(",") if n]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {sorted(RECIPES)}")

    tiny = write_tiny_models(out / "tiny_models")
    corpora = {}
    for corpus in sorted({RECIPES[n][0].split("/")[1] for n in names}):
        corpora[corpus] = generate_corpus(
            corpus, out / "corpora" / corpus, seed=SEED, progress=False, **SYNTHETIC[corpus]
        )
    rows = {row["hparams"]: row for row in TRAIN_ROWS}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    results = {name: {"clean": 0, "hang": 0, "failed": 0, "deleted_a_checkpoint": 0, "seconds": []} for name in names}
    for i in range(args.runs):
        for name in names:
            hparams, extra = RECIPES[name]
            folder = row_folder(out / "runs" / f"{i:03d}", hparams)
            recipe = registry_command(rows[hparams], tiny, corpora, out / "runs" / f"{i:03d}")
            # registry_command: [python, train.py, yaml, overrides...] -> torchrun over the same script and arguments
            args_ = [
                a for a in recipe[1:] if not a.startswith("--number_of_epochs=")
            ]  # the stress run's own count below
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args_]
            cmd += [*extra, f"--number_of_epochs={args.epochs}", "--distributed_backend=gloo", "--device=cpu"]
            outcome, seconds = watch(cmd, out / f"{name}_{i:03d}.log", folder, args.stall, env)
            results[name][outcome] += 1
            log = folder / "log.txt"
            results[name]["deleted_a_checkpoint"] += int(log.is_file() and "Deleted checkpoint in" in log.read_text())
            results[name]["seconds"].append(round(seconds, 1))
            print(f"run {i + 1}/{args.runs} {name}: {outcome} ({seconds:.0f} s)", flush=True)
    print(
        "\n| recipe | runs | clean | hangs | non-zero exits | runs that deleted a checkpoint | mean s |\n|---|---|---|---|---|---|---|"
    )
    for name, r in results.items():
        n = len(r["seconds"])
        print(
            f"| {name} | {n} | {r['clean']} | {r['hang']} | {r['failed']} | {r['deleted_a_checkpoint']} | {sum(r['seconds']) / max(n, 1):.0f} |"
        )
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["hang"] == r["failed"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
