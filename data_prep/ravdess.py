"""RAVDESS (speech part) preparation.

Expected layout (the ``Audio_Speech_Actors_01-24`` release; song or
audio-visual files in the same tree are ignored)::

    <data_folder>/Actor_01/03-01-01-01-01-01-01.wav
    ...
    <data_folder>/Actor_24/03-01-08-02-02-02-24.wav

File name fields ``MM-VV-EE-II-SS-RR-AA``: modality (03 audio-only), vocal
channel (01 speech), emotion (01 neutral .. 08 surprised), intensity
(01 normal, 02 strong), statement, repetition, actor (odd = male).

Protocol (segment_triplet, after Pepino et al. 2021): calm merged into
neutral (7 classes), actors 1-20 train, 21-22 validation, 23-24 test.

Command line::

    python -m data_prep.ravdess /data/RAVDESS results/prep
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from data_prep.errors import PreparationError
from data_prep.preparation import Item, Preparation, parse_prepare_args, prepare_parser

logger = logging.getLogger(__name__)

EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
FILE_PATTERN = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
SPEECH_AUDIO_PREFIX = ("03", "01")  # modality audio-only, vocal channel speech
FILES_PER_ACTOR = 60
N_ACTORS = 24
DEFAULT_SPLITS = {
    "train": list(range(1, 21)),
    "valid": [21, 22],
    "test": [23, 24],
}


def parse_name(path: Path) -> dict | None:
    """Fields of a RAVDESS speech file name, or None for song/video/other files.

    Raises on a speech file whose emotion or intensity code is unknown.

    Example
    -------
    >>> from pathlib import Path
    >>> parse_name(Path("Actor_12/03-01-05-02-01-02-12.wav"))
    {'emotion': 'angry', 'intensity': 'strong', 'statement': 1, 'repetition': 2, 'actor': 12}
    >>> parse_name(Path("Actor_12/03-02-05-02-01-02-12.wav")) is None
    True
    """
    match = FILE_PATTERN.match(path.name)
    if match is None:
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    if (modality, channel) != SPEECH_AUDIO_PREFIX:
        return None
    if emotion not in EMOTIONS:
        raise PreparationError(f"{path}: unknown emotion code {emotion!r}; known codes: {', '.join(EMOTIONS)}")
    if intensity not in INTENSITIES:
        raise PreparationError(f"{path}: unknown intensity code {intensity!r}; known codes: {', '.join(INTENSITIES)}")
    return {
        "emotion": EMOTIONS[emotion],
        "intensity": INTENSITIES[intensity],
        "statement": int(statement),
        "repetition": int(repetition),
        "actor": int(actor),
    }


def prepare_ravdess(
    data_folder: str | Path,
    save_folder: str | Path,
    merge_calm: bool = True,
    splits: dict[str, Sequence[int]] | None = None,
    allow_subset: bool = False,
    skip_bad_files: bool = False,
) -> dict[str, str]:
    """Write ``train.json``, ``valid.json`` and ``test.json`` for RAVDESS speech.

    Each manifest maps the file stem (utterance id) to ``wav`` (with a
    ``{data_root}`` placeholder), ``duration`` (s), ``speaker`` (``Actor_NN``),
    ``gender``, ``emo``, ``intensity`` and ``statement``. A second call with the
    same options does nothing; changed options re-prepare.

    Arguments
    ---------
    data_folder : str or Path
        Folder holding ``Actor_01`` ... ``Actor_24``.
    save_folder : str or Path
        Where the manifests, ``summary.json``/``summary.md`` and the options go.
    merge_calm : bool
        Map calm to neutral (7 classes, the papers' protocol); False keeps 8.
    splits : dict, optional
        Split name -> actor numbers; default 1-20 / 21-22 / 23-24.
    allow_subset : bool
        Accept a tree with fewer than 24 actors x 60 speech files (a sample, a
        synthetic corpus). Off by default so a partial download is noticed.
    skip_bad_files : bool
        Drop (and list) unreadable or empty files instead of failing.

    Returns
    -------
    dict
        Split name -> manifest path.

    Example
    -------
    >>> import tempfile
    >>> from data_prep.synthetic import generate_corpus
    >>> corpus = generate_corpus("RAVDESS", tempfile.mkdtemp(), speakers=5, repetitions=1,
    ...                          statements=1, emotions=["neutral", "sad"], progress=False)
    >>> paths = prepare_ravdess(corpus, tempfile.mkdtemp(), allow_subset=True)  # doctest: +ELLIPSIS
    | split | utts | ...
    >>> sorted(paths)
    ['test', 'train', 'valid']
    """
    splits = {name: sorted(int(a) for a in actors) for name, actors in (splits or DEFAULT_SPLITS).items()}
    options = {
        "merge_calm": merge_calm,
        "splits": splits,
        "allow_subset": allow_subset,
        "skip_bad_files": skip_bad_files,
    }
    prep = Preparation(
        "RAVDESS", data_folder, save_folder, options, list(splits), layout_hint="Actor_01 ... Actor_24 inside"
    )
    if prep.done():
        return prep.outputs
    data_folder = Path(data_folder)
    actor_dirs = sorted(p for p in data_folder.glob("Actor_*") if p.is_dir())
    if not actor_dirs:
        raise PreparationError(
            f"{data_folder}: no Actor_NN folders found; point data_folder at the folder that holds Actor_01 ... Actor_24"
        )

    actor_to_split = {}
    for name, actors in splits.items():
        for actor in actors:
            if actor in actor_to_split:
                raise PreparationError(f"actor {actor} is listed in splits {actor_to_split[actor]} and {name}")
            actor_to_split[actor] = name

    found = []
    for actor_dir in actor_dirs:
        for wav in sorted(actor_dir.glob("*.wav")):
            parsed = parse_name(wav)
            if parsed is None:
                continue
            if f"Actor_{parsed['actor']:02d}" != actor_dir.name:
                raise PreparationError(
                    f"{wav}: actor {parsed['actor']:02d} in the name does not match its folder {actor_dir.name}"
                )
            found.append((wav, parsed))
    if not found:
        raise PreparationError(f"{data_folder}: no speech files (03-01-*.wav) found under the Actor_NN folders")

    per_actor = Counter(parsed["actor"] for _, parsed in found)
    if not allow_subset:
        missing = [a for a in range(1, N_ACTORS + 1) if per_actor.get(a, 0) != FILES_PER_ACTOR]
        if missing:
            detail = ", ".join(f"Actor_{a:02d}: {per_actor.get(a, 0)}" for a in missing[:6])
            raise PreparationError(
                f"{data_folder}: expected {FILES_PER_ACTOR} speech files for each of {N_ACTORS} actors "
                f"({FILES_PER_ACTOR * N_ACTORS} in all); found {detail}{' ...' if len(missing) > 6 else ''}. "
                "Pass allow_subset=True to prepare a partial tree on purpose."
            )
    unassigned = sorted(a for a in per_actor if a not in actor_to_split)
    if unassigned:
        logger.warning("Actors %s are in no split and are left out.", unassigned)

    items: dict[str, list[Item]] = {name: [] for name in splits}
    for wav, parsed in found:
        if parsed["actor"] not in actor_to_split:
            continue
        emotion = "neutral" if merge_calm and parsed["emotion"] == "calm" else parsed["emotion"]
        fields = {
            "gender": "male" if parsed["actor"] % 2 else "female",
            "emo": emotion,
            "intensity": parsed["intensity"],
            "statement": parsed["statement"],
        }
        items[actor_to_split[parsed["actor"]]].append(Item(wav.stem, wav, f"Actor_{parsed['actor']:02d}", fields))
    return prep.write(
        items, label_key="emo", skip_bad_files=skip_bad_files, extra_summary={"protocol": "actors 1-20 / 21-22 / 23-24"}
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m data_prep.ravdess DATA_FOLDER SAVE_FOLDER``."""
    parser = prepare_parser(__doc__)
    parser.add_argument("--keep-calm", action="store_true", help="keep calm as an 8th class")
    args = parse_prepare_args(parser, argv)
    prepare_ravdess(
        args.data_folder,
        args.save_folder,
        merge_calm=not args.keep_calm,
        allow_subset=args.allow_subset,
        skip_bad_files=args.skip_bad_files,
    )


if __name__ == "__main__":
    main()
