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

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from data_prep.common import Item, Preparation, check_labels
from data_prep.compare import PARTITIONS, label_files, normalise, partition_is_labelled, read_partition, resolve_audio

logger = logging.getLogger(__name__)

REQUESTS = ("affil", "presta")
COMPLAINTS = ("no", "yes")
JOINT = tuple(f"{c}_{r}" for r in REQUESTS for c in COMPLAINTS)
SPLIT_NAMES = {"train": "train", "devel": "valid", "test": "test"}


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
    options = {"allow_subset": allow_subset, "skip_bad_files": skip_bad_files}
    prep = Preparation(
        "HealthCall30", data_folder, save_folder, options, list(SPLIT_NAMES.values()), "wav/ and lab/{train,devel,test}.csv inside", label_files(data_folder)
    )
    if prep.done():
        return prep.outputs
    rows = {p: read_partition(data_folder, p, ["request", "complaint"]) for p in PARTITIONS}
    audio = resolve_audio(data_folder, rows, allow_subset)
    items: dict[str, list[Item]] = {}
    masked_partitions = []
    for partition, partition_rows in rows.items():
        where = str(Path(data_folder) / "lab" / f"{partition}.csv")
        labelled = partition_rows if partition_is_labelled(partition_rows, ["request", "complaint"], where) else []
        check_labels((normalise(r["request"]) for r in labelled), REQUESTS, where, "request")
        check_labels((normalise(r["complaint"]) for r in labelled), COMPLAINTS, where, "complaint")
        if not labelled:
            masked_partitions.append(partition)
        split_items = []
        for row in partition_rows:
            if row["filename"] not in audio:
                continue
            fields: dict = {"partition": partition, "labelled": bool(labelled)}
            if labelled:
                request, complaint = normalise(row["request"]), normalise(row["complaint"])
                fields.update(request=request, complaint=complaint, joint=joint_label(complaint, request))
            stem = Path(row["filename"]).stem
            split_items.append(Item(stem, audio[row["filename"]], stem, fields))
        items[SPLIT_NAMES[partition]] = split_items
    summary = {"protocol": "challenge partitions", "masked_partitions": masked_partitions}
    return prep.write(items, "joint", skip_bad_files, extra_summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.healthcall30 DATA_FOLDER SAVE_FOLDER``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--allow-subset", action="store_true")
    parser.add_argument("--skip-bad-files", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    prepare_healthcall30(args.data_folder, args.save_folder, allow_subset=args.allow_subset, skip_bad_files=args.skip_bad_files)


if __name__ == "__main__":
    main()
