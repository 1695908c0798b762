"""The skeleton every ``prepare_<corpus>`` function shares: skip when prepared, checks, atomic manifests.

Option fingerprints (skip when prepared with the same options, redo when
they change), manifests and summaries written atomically after the
speaker-leakage check, the ``{data_root}`` placeholder, and the command
line every ``python -m data_prep.<corpus>`` shares.
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

from data_prep.checks import check_audio
from data_prep.errors import PreparationError
from data_prep.splits import check_speaker_disjoint, format_summary, summarise_splits
from speechbrain_ext.data.manifests import (
    DATA_ROOT,  # the placeholder, read back by speechbrain_ext.data.manifests.read_manifest
)
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

OPTIONS_FILE = "prepare_options.json"


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
