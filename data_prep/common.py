"""Shared pieces of every ``prepare_<corpus>`` function.

Atomic writes, option fingerprints (skip when prepared with the same options,
redo when they change), audio checks that name the offending file, the
speaker-leakage check that ends every preparation, and the per-split summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import soundfile
from tqdm import tqdm

from speechbrain_ext.data.manifests import (
    DATA_ROOT,  # the placeholder, read back by speechbrain_ext.data.manifests.read_manifest
)
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text  # noqa: F401 (re-exported for the preparation modules)

logger = logging.getLogger(__name__)

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


def options_fingerprint(options: Mapping[str, Any]) -> str:
    """A stable hash of the preparation options (order-independent).

    Example
    -------
    >>> options_fingerprint({"a": 1, "b": [2]}) == options_fingerprint({"b": [2], "a": 1})
    True
    """
    blob = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_prepared(
    save_folder: str | os.PathLike, outputs: Iterable[str | os.PathLike], options: Mapping[str, Any]
) -> bool:
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


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """Duration (s), sample rate and channel count of an audio file, with a clear error.

    Any sample rate and channel count is accepted (recipes resample to 16 kHz mono).

    Arguments
    ---------
    path : str or PathLike
        Audio file readable by ``soundfile``.

    Returns
    -------
    tuple
        ``(seconds, sample_rate, channels)``.

    Raises
    ------
    AudioFileError
        When the file is missing, cannot be decoded, or holds no samples.

    Example
    -------
    >>> import tempfile, numpy, soundfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> soundfile.write(path, numpy.zeros((8000, 2)), 16000)
    >>> audio_info(path)
    (0.5, 16000, 2)
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
        raise AudioFileError(path, "holds no audio samples (zero length)")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def check_audio(
    paths: Mapping[str, str], skip_bad_files: bool = False, progress: bool | None = None
) -> tuple[dict[str, tuple[float, int, int]], list[AudioFileError]]:
    """Read every file's header; fail on the first bad one, or list and drop bad ones.

    Arguments
    ---------
    paths : mapping
        Utterance id -> audio path.
    skip_bad_files : bool
        When True, bad files are returned in the second value instead of raising.
    progress : bool, optional
        Progress bar; by default shown for more than 2000 files.

    Returns
    -------
    infos : dict
        Utterance id -> ``(seconds, sample_rate, channels)`` for the good files.
    bad : list of AudioFileError
        The dropped files (empty unless ``skip_bad_files``).
    """
    infos, bad = {}, []
    show = len(paths) > 2000 if progress is None else progress
    for utt_id, path in tqdm(paths.items(), desc="checking audio", unit="file", disable=not show):
        try:
            seconds, rate, channels = audio_info(path)
            infos[utt_id] = (round(seconds, 4), rate, channels)
        except AudioFileError as err:
            if not skip_bad_files:
                raise AudioFileError(err.path, err.problem + " (pass skip_bad_files=True to drop such files)") from err
            logger.warning("Dropping %s", err)
            bad.append(err)
    if bad:
        print(f"Dropped {len(bad)} unusable audio file(s):\n" + "\n".join(f"  {err}" for err in bad))
    return infos, bad


def check_labels(values: Iterable[str], allowed: Iterable[str], where: str, what: str = "label") -> None:
    """Raise when a value is not in ``allowed``, listing every value seen with its count.

    Example
    -------
    >>> check_labels(["sad", "happy", "joyful"], ["sad", "happy"], "lab/train.csv", "emotion")
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: lab/train.csv: unknown emotion value(s) 'joyful'; values seen: happy (1), joyful (1), sad (1); expected one of: happy, sad
    """
    seen = Counter(values)
    allowed = set(allowed)
    unknown = sorted(v for v in seen if v not in allowed)
    if unknown:
        listing = ", ".join(f"{v} ({n})" for v, n in sorted(seen.items()))
        raise PreparationError(
            f"{where}: unknown {what} value(s) {', '.join(repr(u) for u in unknown)}; values seen: {listing}; expected one of: {', '.join(sorted(allowed))}"
        )


def check_fold(fold: int, n_folds: int, protocol: str) -> None:
    """Raise unless ``1 <= fold <= n_folds``.

    Example
    -------
    >>> check_fold(6, 5, "loso")
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: protocol 'loso' has folds 1..5, not 6
    """
    if not 1 <= int(fold) <= n_folds:
        raise PreparationError(f"protocol {protocol!r} has folds 1..{n_folds}, not {fold}")


def leave_one_speaker_out(speakers: Sequence[str], fold: int, valid_offset: int = 1) -> dict[str, list[str]]:
    """Fold ``fold`` (1-based) of leave-one-speaker-out with a validation speaker.

    Speakers are sorted; the test speaker is the ``fold``-th, the validation
    speaker the one ``valid_offset`` places after it (cyclically).

    Example
    -------
    >>> leave_one_speaker_out(["s3", "s1", "s2"], 3)
    {'train': ['s2'], 'valid': ['s1'], 'test': ['s3']}
    """
    ordered = sorted(speakers)
    check_fold(fold, len(ordered), "leave-one-speaker-out")
    test = ordered[fold - 1]
    valid = ordered[(fold - 1 + valid_offset) % len(ordered)]
    if valid == test:
        raise PreparationError("leave-one-speaker-out needs at least two speakers")
    return {"train": [s for s in ordered if s not in (test, valid)], "valid": [valid], "test": [test]}


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


def summarise_splits(
    splits: Mapping[str, Mapping[str, Mapping[str, Any]]], label_key: str, speaker_key: str = "speaker"
) -> dict:
    """Counts per class and speaker, hours, sample rates and channels, for each split.

    Entries without ``label_key`` (a masked test set) count as ``"(unlabelled)"``.

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
            "classes": dict(sorted(Counter(str(e.get(label_key, "(unlabelled)")) for e in entries).items())),
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


def write_split_manifests(
    save_folder: str | os.PathLike,
    splits: Mapping[str, Mapping[str, Any]],
    label_key: str,
    speaker_independent: bool = True,
    audio_formats: Mapping[str, Any] | None = None,
    extra_summary: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write one JSON manifest per split plus the summary files; return the paths.

    Runs the speaker-leakage check first, so no leaking split is ever written;
    only a protocol declared speaker-dependent (``speaker_independent=False``,
    e.g. a random split) skips it, with a warning in the log and the summary.
    """
    if speaker_independent:
        check_speaker_disjoint(splits)
    else:
        logger.warning(
            "This protocol is speaker-DEPENDENT: speakers are shared between splits; do not compare its numbers with speaker-independent results."
        )
    save_folder = Path(save_folder)
    paths = {}
    for split, manifest in splits.items():
        path = save_folder / f"{split}.json"
        atomic_write_json(path, dict(manifest))
        paths[split] = str(path)
    summary = summarise_splits(splits, label_key)
    document = {"splits": summary, "speaker_independent": speaker_independent, "label_key": label_key}
    if audio_formats:
        document["audio_formats"] = dict(audio_formats)
    if extra_summary:
        document.update(extra_summary)
    atomic_write_json(save_folder / "summary.json", document)
    table = format_summary(summary)
    if audio_formats:
        table += (
            "\n\nAudio: "
            + ", ".join(f"{fmt} ({n} files)" for fmt, n in audio_formats.items())
            + "; recipes resample to 16 kHz mono."
        )
    if not speaker_independent:
        table += "\n\nWARNING: speaker-dependent split (speakers shared across splits); not comparable with speaker-independent results."
    atomic_write_text(save_folder / "summary.md", table + "\n")
    print(table)  # printed once; the logger would repeat it on the console
    return paths


@dataclass
class Item:
    """One utterance found in a corpus, before its audio is checked.

    Attributes
    ----------
    utt_id : str
        Unique id (manifest key).
    path : Path
        Absolute audio path.
    speaker : str
        Speaker id (leakage is checked on it).
    fields : dict
        Labels and metadata written to the manifest (``emo``, ``transcript``, ...).
    """

    utt_id: str
    path: Path
    speaker: str
    fields: dict = dataclass_field(default_factory=dict)


class Preparation:
    """The skeleton every ``prepare_<corpus>`` shares: skip-if-done, checks, atomic writes.

    Usage inside a prepare function::

        prep = Preparation("IEMOCAP", data_folder, save_folder, options, splits=("train", "valid", "test"))
        if prep.done():
            return prep.outputs
        items_by_split = ...  # parse the corpus, assign folds
        return prep.write(items_by_split, label_key="emo", skip_bad_files=skip_bad_files)

    Arguments
    ---------
    corpus : str
        Corpus name (for messages and the options record).
    data_folder, save_folder : str or Path
        Corpus root and output folder.
    options : dict
        Every option that changes the output (JSON-serialisable).
    splits : sequence of str
        Names of the manifests written.
    layout_hint : str
        What the corpus root should contain, for the missing-folder error.
    label_files : sequence of paths
        Label/listing files; their size and modification time join the
        options, so editing one re-prepares.
    """

    def __init__(
        self,
        corpus: str,
        data_folder,
        save_folder,
        options: Mapping[str, Any],
        splits: Sequence[str],
        layout_hint: str = "",
        label_files: Iterable[str | os.PathLike] = (),
    ):
        self.corpus = corpus
        self.data_folder, self.save_folder = Path(data_folder), Path(save_folder)
        stamps = {}
        for label_file in map(Path, label_files):
            if label_file.is_file():
                stat = label_file.stat()
                stamps[str(label_file)] = [stat.st_size, stat.st_mtime_ns]
        self.options = {
            "corpus": corpus,
            "data_folder": str(self.data_folder.resolve()),
            **options,
            "label_files": stamps,
        }
        self.outputs = {name: str(self.save_folder / f"{name}.json") for name in splits}
        self.layout_hint = layout_hint

    def done(self) -> bool:
        """True (and logged) when the outputs exist with the same options; else checks the corpus folder."""
        if is_prepared(self.save_folder, self.outputs.values(), self.options):
            logger.info("%s already prepared in %s with the same options; skipping.", self.corpus, self.save_folder)
            return True
        if not self.data_folder.is_dir():
            hint = f" (expected {self.layout_hint})" if self.layout_hint else ""
            raise PreparationError(f"{self.data_folder}: {self.corpus} folder not found{hint}")
        clear_prepared(self.save_folder)
        return False

    def write(
        self,
        items: Mapping[str, Sequence[Item]],
        label_key: str,
        skip_bad_files: bool = False,
        speaker_independent: bool = True,
        extra_summary: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Check the audio, write manifests and summary, then record the options.

        Arguments
        ---------
        items : mapping
            Split name -> items.
        label_key : str
            The field the summary counts.
        skip_bad_files : bool
            Drop unusable audio (listed) instead of failing.
        speaker_independent : bool
            False only for speaker-dependent protocols (skips the leakage check, loudly).
        extra_summary : mapping, optional
            Protocol facts added to ``summary.json``.

        Returns
        -------
        dict
            Split name -> manifest path.
        """
        missing = [name for name in self.outputs if not items.get(name)]
        if missing:
            raise PreparationError(
                f"{self.data_folder}: split(s) {', '.join(missing)} would be empty with these options"
            )
        seen: dict[str, str] = {}
        for split, split_items in items.items():
            for item in split_items:
                if item.utt_id in seen:
                    raise PreparationError(
                        f"{item.path}: utterance id {item.utt_id} appears twice ({seen[item.utt_id]} and {split})"
                    )
                seen[item.utt_id] = split
        infos, _ = check_audio({i.utt_id: str(i.path) for its in items.values() for i in its}, skip_bad_files)
        manifests: dict[str, dict] = {}
        formats: Counter = Counter()
        root = self.data_folder
        for split, split_items in items.items():
            manifest = {}
            for item in sorted(split_items, key=lambda i: i.utt_id):
                if item.utt_id not in infos:
                    continue
                seconds, rate, channels = infos[item.utt_id]
                formats[f"{rate} Hz, {channels} ch"] += 1
                manifest[item.utt_id] = {
                    "wav": to_data_root(item.path, root),
                    "duration": seconds,
                    "speaker": item.speaker,
                    **item.fields,
                }
            manifests[split] = manifest
        paths = write_split_manifests(
            self.save_folder, manifests, label_key, speaker_independent, dict(formats.most_common()), extra_summary
        )
        mark_prepared(self.save_folder, self.options)
        return paths


def to_data_root(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` under ``root`` written with the ``{data_root}`` placeholder.

    Symbolic links in either path are allowed: the link-preserving absolute
    paths are tried first, then the resolved ones.

    Example
    -------
    >>> to_data_root("/corpora/iemocap/Session1/a.wav", "/corpora/iemocap")
    '{data_root}/Session1/a.wav'
    """
    for base, target in (
        (Path(os.path.abspath(root)), Path(os.path.abspath(path))),
        (Path(root).resolve(), Path(path).resolve()),
    ):
        try:
            return f"{DATA_ROOT}/{target.relative_to(base).as_posix()}"
        except ValueError:
            continue
    raise PreparationError(f"{path}: not inside the corpus folder {root}")


def prepare_parser(description: str) -> argparse.ArgumentParser:
    """Command-line parser with the arguments every ``python -m data_prep.<corpus>`` shares.

    Example
    -------
    >>> args = prepare_parser("demo").parse_args(["/data/x", "prep", "--allow-subset"])
    >>> args.allow_subset, args.skip_bad_files
    (True, False)
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_folder")
    parser.add_argument("save_folder")
    parser.add_argument("--allow-subset", action="store_true", help="prepare a partial corpus on purpose")
    parser.add_argument("--skip-bad-files", action="store_true", help="list and drop unusable audio instead of failing")
    return parser


def parse_prepare_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line and show the preparation's log messages."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return args


def index_audio(folder: str | os.PathLike, suffixes: Sequence[str] = (".wav",)) -> dict[str, Path]:
    """Map file stem -> path for every audio file under ``folder`` (first found wins, duplicates warned)."""
    index: dict[str, Path] = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            if path.stem in index:
                logger.warning("%s: duplicate of %s, ignored", path, index[path.stem])
                continue
            index[path.stem] = path
    return index
