"""HealthCall30 (ComParE 2023 Requests) preparation.

Expected layout (the challenge package)::

    <data_folder>/wav/train_0001.wav ...
    <data_folder>/lab/train.csv   # filename,request,complaint
    <data_folder>/lab/devel.csv
    <data_folder>/lab/test.csv    # labels masked ("?") in the challenge release

Targets (compare2023_bayes_fusion): ``request`` (``affil`` / ``presta``),
``complaint`` (``no`` / ``yes``), and the joint 4-class label
``<complaint>_<request>`` (``no_affil``, ``yes_affil``, ``no_presta``,
``yes_presta``) whose prediction splits back into the two binary outputs.
Label strings are normalised (case, whitespace); values outside these sets
fail with the list of values seen. A masked test partition becomes a
predict-only manifest (no label fields), from which recipes write a
submission file.

Protocol: the challenge partitions, ``train`` / ``devel`` (validation) /
``test``; manifests are named ``train.json``, ``valid.json``, ``test.json``.

Command line::

    python -m data_prep.healthcall30 /data/HealthCall30 results/prep
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from data_prep.checks import check_labels
from data_prep.compare import normalise, prepare_challenge_package
from data_prep.preparation import parse_prepare_args, prepare_parser

logger = logging.getLogger(__name__)

REQUESTS = ("affil", "presta")
COMPLAINTS = ("no", "yes")


def joint_label(complaint: str, request: str) -> str:
    """The 4-class label of a (complaint, request) pair.

    Example
    -------
    >>> joint_label("yes", "presta")
    'yes_presta'
    """
    return f"{complaint}_{request}"


def split_joint(label: str) -> tuple[str, str]:
    """Inverse of :func:`joint_label`: ``(complaint, request)``.

    Example
    -------
    >>> split_joint("no_affil")
    ('no', 'affil')
    """
    complaint, request = label.split("_", 1)
    return complaint, request


def prepare_healthcall30(
    data_folder: str | Path,
    save_folder: str | Path,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` (devel) and ``test.json`` for HealthCall30.

    Labelled entries hold ``request``, ``complaint`` and ``joint``; entries of
    a masked partition hold no label field (``labelled: false``).

    Arguments
    ---------
    data_folder : str or Path
        Challenge package root (``wav/`` and ``lab/``).
    save_folder : str or Path
        Output folder.
    allow_subset : bool
        Prepare even when listed audio files are missing (they are dropped).
    skip_bad_files : bool
        Drop (and list) unreadable or empty audio instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    return prepare_challenge_package(
        "HealthCall30",
        data_folder,
        save_folder,
        ["request", "complaint"],
        _labels,
        "joint",
        allow_subset,
        skip_bad_files,
        check_partition=_check_label_sets,
    )


def _check_label_sets(rows: list[dict], where: str) -> None:
    """Every request and complaint value of a partition is known (the error lists the values seen)."""
    check_labels((normalise(r["request"]) for r in rows), REQUESTS, where, "request")
    check_labels((normalise(r["complaint"]) for r in rows), COMPLAINTS, where, "complaint")


def _labels(row: dict, where: str) -> dict:
    """Manifest label fields of a checked row."""
    request, complaint = normalise(row["request"]), normalise(row["complaint"])
    return {"request": request, "complaint": complaint, "joint": joint_label(complaint, request)}


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.healthcall30 DATA_FOLDER SAVE_FOLDER``."""
    parser = prepare_parser(__doc__)
    args = parse_prepare_args(parser, argv)
    prepare_healthcall30(
        args.data_folder, args.save_folder, allow_subset=args.allow_subset, skip_bad_files=args.skip_bad_files
    )


if __name__ == "__main__":
    main()
