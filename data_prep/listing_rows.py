"""Reading and checking the rows of your own corpus (a CSV listing or a ``<label>/<speaker>/*.wav`` tree).

The format and the protocols are described in :mod:`data_prep.listing`; every
problem found here names the CSV line (or the file) it comes from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from data_prep.checks import check_labels
from data_prep.errors import PreparationError
from data_prep.preparation import to_data_root

logger = logging.getLogger(__name__)

REQUIRED = ("path", "label", "speaker")
OPTIONAL = ("split", "transcript")
#: Names a target column may not take (manifest fields written by the preparation).
RESERVED = {"wav", "duration", "speaker", "emo", "emo_original", "transcript", *REQUIRED, *OPTIONAL}
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "dev": "valid",
    "devel": "valid",
    "test": "test",
}
DROP = "drop"
AUDIO_SUFFIXES = (".wav", ".flac")


def clean(value: str | None) -> str:
    """Trimmed, Unicode-NFC text (so ``é`` typed two ways is one label).

    Example
    -------
    >>> clean("  Fre\u0301ude ") == "Fr\u00e9ude"
    True
    """
    return unicodedata.normalize("NFC", (value or "").strip())


def parse_names(value: str | Iterable[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (empty entries dropped).

    Example
    -------
    >>> parse_names("Freude, Wut,"), parse_names(None)
    (['Freude', 'Wut'], [])
    """
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    return [c for c in (clean(str(p)) for p in parts) if c]


def parse_label_map(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"a=b,c=drop"`` (or a mapping) -> ``{"a": "b", "c": "drop"}``.

    Example
    -------
    >>> parse_label_map("colère=Wut, dégoût = drop")
    {'colère': 'Wut', 'dégoût': 'drop'}
    >>> parse_label_map("colère")
    Traceback (most recent call last):
    ...
    data_prep.errors.PreparationError: label map entry 'colère' is not old=new (or old=drop)
    """
    if not value:
        return {}
    pairs = value.items() if isinstance(value, Mapping) else (p.split("=", 1) for p in parse_names(value))
    mapping = {}
    for pair in pairs:
        if len(pair) != 2 or not clean(pair[0]) or not clean(pair[1]):
            raise PreparationError(f"label map entry {'='.join(pair)!r} is not old=new (or old={DROP})")
        mapping[clean(pair[0])] = clean(pair[1])
    return mapping


def resolve_listing(listing: str | os.PathLike, data_folder: str | os.PathLike) -> Path:
    """The listing file: absolute, else relative to ``data_folder`` if it is there, else to the working directory."""
    listing = Path(listing)
    if listing.is_absolute() or (Path(data_folder) / listing).is_file() or not listing.is_file():
        return (Path(data_folder) / listing).resolve()
    return listing.resolve()


def read_listing(listing: Path, targets: Sequence[str], need_split: bool = False) -> tuple[list[dict], list[str]]:
    """Rows of a listing (with ``line``) and the problems of its header and rows' shape.

    Arguments
    ---------
    listing : Path
        The CSV file.
    targets : sequence of str
        Numeric columns the listing must have (lower case).
    need_split : bool
        The listing must have a ``split`` column (protocol ``given``).

    Returns
    -------
    rows : list of dict
        Column (lower case) -> trimmed text, plus ``line`` (1-based line of the CSV).
    problems : list of str
        Messages starting with ``line N:``.
    """
    if not listing.is_file():
        raise PreparationError(
            f"{listing}: listing not found (a CSV with columns {','.join(REQUIRED)}; see data_prep/listing.py)"
        )
    try:
        text = listing.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PreparationError(f"{listing}: not UTF-8 text ({err}); save the listing as UTF-8") from err
    header = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=max((",", ";", "\t"), key=header.count))
    columns = [clean(c).lower() for c in reader.fieldnames or []]
    hint = f"columns: {', '.join(REQUIRED)}, optionally {', '.join(OPTIONAL)} and the numeric targets named in targets"
    fatal = [f"line 1: column {c!r} appears twice" for c, n in Counter(columns).items() if n > 1]
    fatal += [
        f"line 1: no {c!r} column" + (" (named in targets)" if c in targets else "")
        for c in (*REQUIRED, *targets, *(["split"] if need_split else []))
        if c not in columns
    ]
    if fatal:
        raise PreparationError(f"{listing}: {'; '.join(fatal)}; found {reader.fieldnames}; {hint}")
    known = {*REQUIRED, *OPTIONAL, *targets}
    problems = [f"line 1: unknown column {c!r} ({hint})" for c in columns if c not in known]
    rows = []
    for raw in reader:
        line = reader.line_num
        row = {name: clean(raw.get(field)) for name, field in zip(columns, reader.fieldnames)}
        if not any(row.values()) and None not in raw:
            continue
        row["line"] = line
        if None in raw or any(raw.get(f) is None for f in reader.fieldnames):
            n = len([f for f in reader.fieldnames if raw.get(f) is not None]) + len(raw.get(None) or [])
            problems.append(f"line {line}: {n} fields, the header has {len(columns)}")
        rows.append(row)
    if not rows and not problems:
        raise PreparationError(f"{listing}: no rows below the header")
    return rows, problems


def rows_from_folders(data_folder: Path) -> list[dict]:
    """Rows (``path``, ``label``, ``speaker``; ``line`` None) of a ``<label>/<speaker>/*.wav`` tree.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "Freude" / "anna").mkdir(parents=True)
    >>> _ = (root / "Freude" / "anna" / "a1.wav").write_bytes(b"")
    >>> rows_from_folders(root)
    [{'path': 'Freude/anna/a1.wav', 'label': 'Freude', 'speaker': 'anna', 'line': None}]
    """
    rows, stray = [], []
    for path in sorted(data_folder.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        parts = path.relative_to(data_folder).parts
        if any(part.startswith(".") for part in parts):  # hidden files (macOS ._ copies, .trash)
            continue
        if len(parts) != 3:
            stray.append("/".join(parts))
            continue
        rows.append({"path": "/".join(parts), "label": clean(parts[0]), "speaker": clean(parts[1]), "line": None})
    if stray:
        shown = ", ".join(stray[:10]) + (f" and {len(stray) - 10} more" if len(stray) > 10 else "")
        raise PreparationError(f"{data_folder}: audio files not at <label>/<speaker>/<file>: {shown}")
    if not rows:
        raise PreparationError(f"{data_folder}: no audio files at <label>/<speaker>/*.wav")
    return rows


def check_rows(
    rows: list[dict], data_folder: Path, targets: Sequence[str], protocol: str, allow_subset: bool
) -> list[str]:
    """Problems of the rows (missing file, empty fields, bad split or target), each starting with its line.

    Turns target values into floats and adds ``audio`` (absolute path) and ``split`` (given protocol) in place.
    Rows whose file is missing are dropped (and logged) when ``allow_subset``.
    """
    problems, first_line, missing = [], {}, []
    for row in rows:
        where = f"line {row['line']}" if row["line"] is not None else row["path"]
        row_problems = [f"{where}: empty {c}" for c in REQUIRED if not row[c]]
        if row["path"]:
            audio = data_folder / row["path"]
            row["audio"] = audio
            key = os.path.normpath(audio)
            if key in first_line:
                row_problems.append(f"{where}: {row['path']} listed twice (also line {first_line[key]})")
            first_line.setdefault(key, row["line"])
            try:
                to_data_root(audio, data_folder)
            except PreparationError:
                row_problems.append(f"{where}: {row['path']} is not inside the corpus folder {data_folder}")
            else:
                if not audio.is_file():
                    if allow_subset:
                        missing.append(row)
                    else:
                        row_problems.append(f"{where}: file not found: {row['path']}")
        for target in targets:
            try:
                row[target] = float(row[target])
                if not math.isfinite(row[target]):
                    raise ValueError
            except ValueError:
                row_problems.append(f"{where}: {target} = {row[target]!r} is not a number")
        if protocol == "given":
            split = SPLIT_NAMES.get(row.get("split", "").lower())
            if split is None:
                row_problems.append(f"{where}: split {row.get('split', '')!r} is not train, valid or test")
            row["split"] = split
        problems += row_problems
    if missing:
        logger.warning("Dropping %d listed row(s) whose file is missing (allow_subset)", len(missing))
        gone = {id(r) for r in missing}
        rows[:] = [r for r in rows if id(r) not in gone]
    return problems


def apply_labels(rows: list[dict], label_map: Mapping[str, str], labels: Sequence[str], where: str) -> Counter:
    """Map (merge or drop) the labels in place, then check them against ``labels``; return the dropped counts.

    Example
    -------
    >>> rows = [{"label": "colère"}, {"label": "joie"}, {"label": "dégoût"}]
    >>> apply_labels(rows, {"colère": "Wut", "dégoût": "drop"}, [], "x.csv")
    Counter({'dégoût': 1})
    >>> [(r["label"], r["original"]) for r in rows]
    [('Wut', 'colère'), ('joie', 'joie')]
    """
    seen = Counter(r["label"] for r in rows)
    unused = sorted(set(label_map) - set(seen))
    if unused:
        values = ", ".join(f"{v} ({n})" for v, n in sorted(seen.items()))
        raise PreparationError(f"{where}: label map names label(s) {unused} that no row has; labels seen: {values}")
    dropped = Counter()
    kept = []
    for row in rows:
        row["original"] = row["label"]
        row["label"] = label_map.get(row["label"], row["label"])
        if row["label"] == DROP:
            dropped[row["original"]] += 1
        else:
            kept.append(row)
    rows[:] = kept
    if dropped:
        logger.info("Dropped by the label map: %s", dict(dropped))
    if labels:
        check_labels((r["label"] for r in rows), labels, where, "label")
        empty = [c for c in labels if c not in {r["label"] for r in rows}]
        if empty:
            raise PreparationError(f"{where}: label(s) {empty} in labels have no rows (after the label map)")
    if len({r["label"] for r in rows}) < 2:
        raise PreparationError(f"{where}: {len(rows)} row(s) with labels {sorted(seen)}; at least two classes needed")
    return dropped


def utterance_ids(paths: Sequence[str]) -> list[str]:
    """File stems when unique, else the relative paths without suffix, ``/`` spelled ``__``.

    Example
    -------
    >>> utterance_ids(["a/x.wav", "b/y.wav"]), utterance_ids(["a/x.wav", "b/x.wav"])
    (['x', 'y'], ['a__x', 'b__x'])
    """
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [Path(p).with_suffix("").as_posix().replace("/", "__") for p in paths]


def tree_fingerprint(data_folder: Path) -> str:
    """A hash of the audio files' relative paths and sizes under ``data_folder`` (the folder tree's "listing")."""
    tree = sorted(
        f"{p.relative_to(data_folder).as_posix()}:{p.stat().st_size}"
        for p in data_folder.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
    )
    return hashlib.sha256("\n".join(tree).encode()).hexdigest()[:16]
