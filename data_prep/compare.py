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
from pathlib import Path

from data_prep.common import PreparationError

PARTITIONS = ("train", "devel", "test")
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
        raise PreparationError(f"{path}: label file not found (expected lab/train.csv, lab/devel.csv, lab/test.csv beside wav/)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PreparationError(f"{path}: empty label file")
        index = {normalise(h): i for i, h in enumerate(header)}
        wanted = ["filename", *columns]
        missing = [c for c in wanted if normalise(c) not in index]
        if missing:
            raise PreparationError(f"{path}: missing column(s) {', '.join(missing)}; columns found: {', '.join(header)}")
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


def resolve_audio(data_folder: str | os.PathLike, rows_by_partition: dict[str, list[dict]], allow_subset: bool) -> dict[str, Path]:
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
        raise PreparationError(f"{where}: some rows are labelled and some masked (e.g. lines {lines}); a partition is either fully labelled or fully masked")
    return not all(masked)
