"""Reader of the ComParE challenge package layout (HealthCall30, Hume-Prosody).

Layout::

    <data_folder>/wav/<file>.wav
    <data_folder>/lab/train.csv
    <data_folder>/lab/devel.csv
    <data_folder>/lab/test.csv      # labels masked ("?") in the challenge release

Partitions are the challenge's (no speaker ids are published), so the
manifests keep them; each file is its own ``speaker`` for the leakage check,
which then guarantees that no file is listed in two partitions.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation

PARTITIONS = ("train", "devel", "test")
#: Manifest name of each challenge partition (devel validates).
SPLIT_NAMES = {"train": "train", "devel": "valid", "test": "test"}
MASKED = {"?", "", "nan", "none", "null"}


def normalise(value: str) -> str:
    """Lower case, trimmed, inner whitespace and dashes as underscores.

    Example
    -------
    >>> normalise("  Yes-Affil ")
    'yes_affil'
    """
    return "_".join(value.strip().lower().replace("-", " ").split())


def is_masked(values) -> bool:
    """True when every label of a row is masked (``?`` or empty).

    Example
    -------
    >>> is_masked(["?", " "]), is_masked(["?", "yes"])
    (True, False)
    """
    return all(normalise(v) in MASKED for v in values)


def label_files(data_folder: str | os.PathLike) -> list[Path]:
    """The package's label files (for the preparation fingerprint)."""
    return [Path(data_folder) / "lab" / f"{p}.csv" for p in PARTITIONS]


def read_partition(data_folder: str | os.PathLike, partition: str, columns: list[str]) -> list[dict]:
    """Rows of ``lab/<partition>.csv`` with the given label columns (matched case-insensitively).

    Arguments
    ---------
    data_folder : str or PathLike
        Challenge package root.
    partition : str
        ``train``, ``devel`` or ``test``.
    columns : list of str
        Label columns that must be present besides ``filename``.

    Returns
    -------
    list of dict
        ``{"filename": ..., "line": n, <column>: raw value, ...}`` per row.
    """
    path = Path(data_folder) / "lab" / f"{partition}.csv"
    if not path.is_file():
        raise PreparationError(
            f"{path}: label file not found (expected lab/train.csv, lab/devel.csv, lab/test.csv beside wav/)"
        )
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PreparationError(f"{path}: empty label file")
        index = {normalise(h): i for i, h in enumerate(header)}
        wanted = ["filename", *columns]
        missing = [c for c in wanted if normalise(c) not in index]
        if missing:
            raise PreparationError(
                f"{path}: missing column(s) {', '.join(missing)}; columns found: {', '.join(header)}"
            )
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise PreparationError(f"{path}, line {line_no}: {len(row)} fields, header has {len(header)}")
            entry = {c: row[index[normalise(c)]].strip() for c in wanted}
            entry["line"] = line_no
            rows.append(entry)
    if not rows:
        raise PreparationError(f"{path}: no rows")
    return rows


def resolve_audio(
    data_folder: str | os.PathLike, rows_by_partition: dict[str, list[dict]], allow_subset: bool
) -> dict[str, Path]:
    """Audio path of every listed file; missing files fail (or are dropped with ``allow_subset``).

    Returns
    -------
    dict
        ``filename`` -> path, for the files that exist.
    """
    wav_dir = Path(data_folder) / "wav"
    if not wav_dir.is_dir():
        raise PreparationError(f"{wav_dir}: audio folder not found (expected wav/ beside lab/)")
    present, missing = {}, []
    for partition, rows in rows_by_partition.items():
        for row in rows:
            path = wav_dir / row["filename"]
            if path.is_file():
                present[row["filename"]] = path
            else:
                missing.append(f"{row['filename']} (lab/{partition}.csv)")
    if missing and not allow_subset:
        raise PreparationError(
            f"{wav_dir}: {len(missing)} listed file(s) are missing, e.g. {', '.join(missing[:5])}; pass allow_subset=True to prepare the rest on purpose"
        )
    return present


def partition_is_labelled(rows: list[dict], columns: list[str], where: str) -> bool:
    """True for a labelled partition, False for a masked one; mixed partitions fail.

    Example
    -------
    >>> partition_is_labelled([{"a": "?", "line": 2}], ["a"], "lab/test.csv")
    False
    """
    masked = [is_masked([r[c] for c in columns]) for r in rows]
    if any(masked) and not all(masked):
        lines = [r["line"] for r, m in zip(rows, masked) if m][:5]
        raise PreparationError(
            f"{where}: some rows are labelled and some masked (e.g. lines {lines}); a partition is either fully labelled or fully masked"
        )
    return not all(masked)


def prepare_challenge_package(
    corpus: str,
    data_folder: str | os.PathLike,
    save_folder: str | os.PathLike,
    columns: list[str],
    labels_of: Callable[[dict, str], dict],
    label_key: str,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
    check_partition: Callable[[list[dict], str], None] | None = None,
    extra_summary: dict | None = None,
) -> dict[str, str]:
    """Prepare a ComParE package: ``train``/``devel``/``test`` become ``train``/``valid``/``test`` manifests.

    Entries hold ``partition`` and ``labelled``; a labelled partition's
    entries add ``labels_of(row, where)``, a masked partition's nothing.

    Arguments
    ---------
    corpus : str
        Corpus name.
    data_folder, save_folder : str or PathLike
        Package root and output folder.
    columns : list of str
        Label columns of ``lab/*.csv``.
    labels_of : callable
        ``(row, label file) -> dict`` of manifest label fields; raises on a bad value.
    label_key : str
        Field the summary counts.
    allow_subset, skip_bad_files : bool
        As every ``prepare_<corpus>``.
    check_partition : callable, optional
        ``(rows, label file)`` check of a labelled partition as a whole (e.g. the label set).
    extra_summary : dict, optional
        Facts added to ``summary.json``.

    Returns
    -------
    dict
        Split name -> manifest path.
    """
    options = {"allow_subset": allow_subset, "skip_bad_files": skip_bad_files}
    prep = Preparation(
        corpus,
        data_folder,
        save_folder,
        options,
        list(SPLIT_NAMES.values()),
        "wav/ and lab/{train,devel,test}.csv inside",
        label_files(data_folder),
    )
    if prep.done():
        return prep.outputs
    rows = {p: read_partition(data_folder, p, columns) for p in PARTITIONS}
    audio = resolve_audio(data_folder, rows, allow_subset)
    items: dict[str, list[Item]] = {}
    masked_partitions = []
    for partition, partition_rows in rows.items():
        where = str(Path(data_folder) / "lab" / f"{partition}.csv")
        labelled = partition_is_labelled(partition_rows, columns, where)
        if not labelled:
            masked_partitions.append(partition)
        elif check_partition is not None:
            check_partition(partition_rows, where)
        split_items = []
        for row in partition_rows:
            labels = labels_of(row, where) if labelled else {}
            if row["filename"] not in audio:
                continue
            stem = Path(row["filename"]).stem
            split_items.append(
                Item(stem, audio[row["filename"]], stem, {"partition": partition, "labelled": labelled, **labels})
            )
        items[SPLIT_NAMES[partition]] = split_items
    summary = {"protocol": "challenge partitions", **(extra_summary or {}), "masked_partitions": masked_partitions}
    return prep.write(items, label_key, skip_bad_files, extra_summary=summary)
