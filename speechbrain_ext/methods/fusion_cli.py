"""Late fusion and ensembles over finished runs.

    python -m speechbrain_ext.fuse RUN_A RUN_B --out fused --tune-on valid
    python -m speechbrain_ext.fuse RUN_A RUN_B --out fused --weights 1.0 0.9
    python -m speechbrain_ext.fuse RUN_A RUN_B RUN_C --out ensemble            # averaged probabilities / intensities
    python -m speechbrain_ext.fuse RUN_A RUN_B RUN_C --out vote --vote         # majority vote
    python -m speechbrain_ext.fuse JOINT_RUN RUN_B RUN_C --out vote --vote --subtask request  # a 4-class run votes on requests

Each RUN is a folder with ``valid_predictions.csv`` and
``test_predictions.csv`` (a recipe run, its ``knn/`` folder, another
fusion's ``--out``); the runs must hold the same utterances. Writes the
fused predictions, the task's valid and test reports, ``fusion.json`` and,
with ``--tune-on``, ``fusion_grid.csv``. See :mod:`speechbrain_ext.methods.fusion`.
"""

from __future__ import annotations

import argparse
import sys

from speechbrain_ext.methods.fusion import fuse_runs, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speechbrain_ext.fuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished run folders (two or more)")
    parser.add_argument("--out", required=True, help="output folder")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--weights", nargs="+", type=float, help="late-fusion weights, one per run")
    how.add_argument("--tune-on", choices=["valid"], help="tune the weights on this split over a grid")
    how.add_argument("--vote", action="store_true", help="majority vote (classification)")
    parser.add_argument("--grid-step", type=float, default=0.1, help="weight grid step for --tune-on (default 0.1)")
    parser.add_argument(
        "--subtask",
        help="runs of joint labels (HealthCall30 4-class) vote or fuse on this sub-task (request, complaint)",
    )
    args = parser.parse_args(argv)
    try:
        reports = fuse_runs(
            args.runs,
            args.out,
            weights=args.weights,
            tune_on=args.tune_on,
            vote=args.vote,
            step=args.grid_step,
            subtask=args.subtask,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
