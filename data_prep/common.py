"""Shared pieces of every ``prepare_<corpus>`` function.

Atomic writes, option fingerprints (skip when prepared with the same options,
redo when they change), audio checks that name the offending file, the
speaker-leakage check that ends every preparation, and the per-split summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import soundfile

logger = logging.getLogger(__name__)

#: Placeholder written into manifests instead of the absolute corpus path, so a
#: prepared folder survives moving the corpus (SpeechBrain ``replacements``).
DATA_ROOT = "{data_root}"
OPTIONS_FILE = "prepare_options.json"


class PreparationError(RuntimeError):
    """A corpus cannot be prepared as asked; the message says which file and why."""


class AudioFileError(PreparationError):
    """An audio file is unreadable, empty or otherwise unusable."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SpeakerLeakageError(PreparationError):
    """A speaker appears in more than one split of a fold."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    An interrupted write leaves the previous file (or none), never half a file.

    Arguments
    ---------
    path : str or PathLike
        Destination file; its folder is created if needed.
    text : str
        Content.

    Example
    -------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write_text(target, "hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (see :func:`atomic_write_text`).

    Example
    -------
    >>> import tempfile, pathlib, json
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> atomic_write_json(target, {"u1": {"emo": "sad"}})
    >>> json.loads(target.read_text())
    {'u1': {'emo': 'sad'}}
    """
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def options_fingerprint(options: Mapping[str, Any]) -> str:
    """A stable hash of the preparation options (order-independent).

    Example
    -------
    >>> options_fingerprint({"a": 1, "b": [2]}) == options_fingerprint({"b": [2], "a": 1})
    True
    """
    blob = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_prepared(save_folder: str | os.PathLike, outputs: Iterable[str | os.PathLike], options: Mapping[str, Any]) -> bool:
    """True when every output exists and was written with the same options.

    Arguments
    ---------
    save_folder : str or PathLike
        Where :func:`mark_prepared` saved the options.
    outputs : iterable of paths
        Files the preparation writes.
    options : mapping
        The options of this call (JSON-serialisable).

    Returns
    -------
    bool
    """
    marker = Path(save_folder) / OPTIONS_FILE
    if not marker.is_file() or not all(Path(p).is_file() for p in outputs):
        return False
    try:
        saved = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return saved.get("fingerprint") == options_fingerprint(options)


def mark_prepared(save_folder: str | os.PathLike, options: Mapping[str, Any]) -> None:
    """Record the options a finished preparation used (written last, atomically)."""
    atomic_write_json(
        Path(save_folder) / OPTIONS_FILE,
        {"fingerprint": options_fingerprint(options), "options": dict(options)},
    )


def clear_prepared(save_folder: str | os.PathLike) -> None:
    """Forget an earlier preparation, so a crash mid-way cannot look finished."""
    marker = Path(save_folder) / OPTIONS_FILE
    if marker.exists():
        marker.unlink()


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds of an audio file, with a clear error when it is unusable.

    Any sample rate and channel count is accepted (recipes resample to 16 kHz mono).

    Arguments
    ---------
    path : str or PathLike
        Audio file readable by ``soundfile``.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    AudioFileError
        When the file is missing, cannot be decoded, or holds no samples.

    Example
    -------
    >>> import tempfile, numpy, soundfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> soundfile.write(path, numpy.zeros(8000), 16000)
    >>> audio_duration(path)
    0.5
    """
    if not os.path.isfile(path):
        raise AudioFileError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except Exception as err:  # soundfile raises several types for bad headers
        raise AudioFileError(path, f"cannot be decoded as audio ({err})") from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(path, "holds no audio samples")
    return info.frames / info.samplerate


def check_durations(paths: Mapping[str, str], skip_bad_files: bool = False) -> tuple[dict[str, float], list[AudioFileError]]:
    """Measure every file; fail on the first bad one, or list and drop bad ones.

    Arguments
    ---------
    paths : mapping
        Utterance id -> audio path.
    skip_bad_files : bool
        When True, bad files are returned in the second value instead of raising.

    Returns
    -------
    durations : dict
        Utterance id -> seconds, for the good files.
    bad : list of AudioFileError
        The dropped files (empty unless ``skip_bad_files``).
    """
    durations, bad = {}, []
    for utt_id, path in paths.items():
        try:
            durations[utt_id] = round(audio_duration(path), 4)
        except AudioFileError as err:
            if not skip_bad_files:
                raise AudioFileError(err.path, err.problem + " (pass skip_bad_files=True to drop such files)") from err
            logger.warning("Dropping %s", err)
            bad.append(err)
    return durations, bad


def check_speaker_disjoint(splits: Mapping[str, Mapping[str, Mapping[str, Any]]], speaker_key: str = "speaker") -> None:
    """Raise when any speaker appears in two splits (speaker leakage).

    Arguments
    ---------
    splits : mapping
        Split name -> manifest (utterance id -> fields).
    speaker_key : str
        Field holding the speaker id.

    Example
    -------
    >>> check_speaker_disjoint({"train": {"a": {"speaker": "s1"}}, "test": {"b": {"speaker": "s2"}}})
    >>> check_speaker_disjoint({"train": {"a": {"speaker": "s1"}}, "test": {"b": {"speaker": "s1"}}})
    Traceback (most recent call last):
    ...
    data_prep.common.SpeakerLeakageError: speaker s1 is in splits test, train
    """
    seen: dict[str, set[str]] = {}
    for split, manifest in splits.items():
        for entry in manifest.values():
            seen.setdefault(entry[speaker_key], set()).add(split)
    for speaker, names in sorted(seen.items()):
        if len(names) > 1:
            raise SpeakerLeakageError(f"speaker {speaker} is in splits {', '.join(sorted(names))}")


def summarise_splits(splits: Mapping[str, Mapping[str, Mapping[str, Any]]], label_key: str, speaker_key: str = "speaker") -> dict:
    """Counts per class and speaker, and hours, for each split.

    Example
    -------
    >>> s = summarise_splits({"train": {"a": {"speaker": "s1", "emo": "sad", "duration": 3600.0}}}, "emo")
    >>> s["train"]["classes"], s["train"]["hours"]
    ({'sad': 1}, 1.0)
    """
    summary = {}
    for split, manifest in splits.items():
        entries = list(manifest.values())
        summary[split] = {
            "utterances": len(entries),
            "hours": round(sum(e["duration"] for e in entries) / 3600, 4),
            "classes": dict(sorted(Counter(str(e[label_key]) for e in entries).items())),
            "speakers": dict(sorted(Counter(str(e[speaker_key]) for e in entries).items())),
        }
    return summary


def format_summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """Render :func:`summarise_splits` output as a short Markdown table."""
    classes = sorted({c for s in summary.values() for c in s["classes"]})
    header = "| split | utts | speakers | hours | " + " | ".join(classes) + " |"
    lines = [header, "|" + "---|" * (4 + len(classes))]
    for split, s in summary.items():
        counts = " | ".join(str(s["classes"].get(c, 0)) for c in classes)
        lines.append(f"| {split} | {s['utterances']} | {len(s['speakers'])} | {s['hours']:.3f} | {counts} |")
    return "\n".join(lines)


def write_split_manifests(save_folder: str | os.PathLike, splits: Mapping[str, Mapping[str, Any]], label_key: str) -> dict[str, str]:
    """Write one JSON manifest per split plus the summary files; return the paths.

    Runs the speaker-leakage check first, so no leaking split is ever written.
    """
    check_speaker_disjoint(splits)
    save_folder = Path(save_folder)
    paths = {}
    for split, manifest in splits.items():
        path = save_folder / f"{split}.json"
        atomic_write_json(path, dict(manifest))
        paths[split] = str(path)
    summary = summarise_splits(splits, label_key)
    atomic_write_json(save_folder / "summary.json", summary)
    table = format_summary(summary)
    atomic_write_text(save_folder / "summary.md", table + "\n")
    print(table)  # printed once; the logger would repeat it on the console
    return paths
