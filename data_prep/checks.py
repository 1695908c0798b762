"""Checks of a corpus's inputs (audio files readable, label values known), with errors that name the file."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import soundfile
from tqdm import tqdm

from data_prep.errors import AudioFileError, PreparationError

logger = logging.getLogger(__name__)


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


def check_labels(values: Iterable[str], allowed: Iterable[str], where: str, what: str = "label") -> None:
    """Raise when a value is not in ``allowed``, listing every value seen with its count.

    Example
    -------
    >>> check_labels(["sad", "happy", "joyful"], ["sad", "happy"], "lab/train.csv", "emotion")
    Traceback (most recent call last):
    ...
    data_prep.errors.PreparationError: lab/train.csv: unknown emotion value(s) 'joyful'; values seen: happy (1), joyful (1), sad (1); expected one of: happy, sad
    """
    seen = Counter(values)
    allowed = set(allowed)
    unknown = sorted(v for v in seen if v not in allowed)
    if unknown:
        listing = ", ".join(f"{v} ({n})" for v, n in sorted(seen.items()))
        raise PreparationError(
            f"{where}: unknown {what} value(s) {', '.join(repr(u) for u in unknown)}; values seen: {listing}; expected one of: {', '.join(sorted(allowed))}"
        )
