"""Synthetic layouts of the acted corpora: RAVDESS, IEMOCAP, FESC and MSP-IMPROV.

Each layout function lists its utterances (path, text, speaker, emotion) and
returns a function that writes the corpus's label files.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from data_prep.synthetic_speech import Utterance, make_speaker
from speechbrain_ext.utils.fileio import atomic_write_text

RAVDESS_STATEMENTS = ["Kids are talking by the door", "Dogs are sitting by the door"]
RAVDESS_CODES = {
    "neutral": "01",
    "calm": "02",
    "happy": "03",
    "sad": "04",
    "angry": "05",
    "fearful": "06",
    "disgust": "07",
    "surprised": "08",
}
RAVDESS_SONG_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful"]


def ravdess_actor_ids(speakers: int) -> list[int]:
    """Actor numbers for ``speakers`` actors, always keeping the validation and test actors 21-24.

    Example
    -------
    >>> ravdess_actor_ids(8)
    [1, 2, 3, 4, 21, 22, 23, 24]
    """
    if speakers >= 24:
        return list(range(1, 25))
    if speakers < 5:
        raise ValueError("RAVDESS needs at least 5 speakers: one for training plus actors 21-24")
    return list(range(1, speakers - 3)) + [21, 22, 23, 24]


def ravdess_layout(
    speakers: int,
    seed: int,
    repetitions: int = 2,
    statements: int = 2,
    emotions: Sequence[str] | None = None,
    song: bool = False,
    **_,
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """RAVDESS: ``Actor_NN/03-01-EE-II-SS-RR-NN.wav`` at 48 kHz, no label files."""
    emotions = list(emotions or RAVDESS_CODES)
    items = []
    for actor in ravdess_actor_ids(speakers):
        spk = make_speaker(f"Actor_{actor:02d}", "en-us", male=actor % 2 == 1, index=(actor - 1) // 2, seed=seed)
        for emotion in emotions:
            for strong in (False, True) if emotion != "neutral" else (False,):
                for statement in range(1, statements + 1):
                    for rep in range(1, repetitions + 1):
                        name = f"03-01-{RAVDESS_CODES[emotion]}-{'02' if strong else '01'}-{statement:02d}-{rep:02d}-{actor:02d}.wav"
                        items.append(
                            Utterance(
                                f"Actor_{actor:02d}/{name}",
                                RAVDESS_STATEMENTS[statement - 1],
                                spk,
                                emotion,
                                strong,
                                48000,
                            )
                        )
            if song and emotion in RAVDESS_SONG_EMOTIONS:
                name = f"03-02-{RAVDESS_CODES[emotion]}-01-01-01-{actor:02d}.wav"
                items.append(Utterance(f"Actor_{actor:02d}/{name}", RAVDESS_STATEMENTS[0], spk, emotion, False, 48000))
    return items, lambda root: None


ENGLISH_SENTENCES = [
    "I told you already, the meeting is tomorrow morning",
    "Can you believe they sold the house last week",
    "We should take the train instead of driving",
    "The results came back and nobody expected that",
    "Please leave the keys on the kitchen table",
    "I have been waiting here for almost an hour",
    "She said the package would arrive on Friday",
    "Nobody answered the phone when I called",
]

# IEMOCAP: consensus label -> (style, strong). exc sounds like strong happiness
# (it is merged into hap in the four-class protocol); fru and xxx are extra labels.
IEMOCAP_STYLES = {
    "neu": ("neutral", False),
    "hap": ("happy", False),
    "exc": ("happy", True),
    "sad": ("sad", False),
    "ang": ("angry", False),
    "fru": ("disgust", False),
    "sur": ("surprised", False),
    "fea": ("fearful", False),
    "xxx": ("calm", False),
}
IEMOCAP_VAD = {
    "neu": (3, 2.5, 2.5),
    "hap": (4, 3.5, 3),
    "exc": (4, 4, 3.5),
    "sad": (2, 2, 2),
    "ang": (1.5, 4, 4),
    "fru": (2, 3.5, 3.5),
    "sur": (3.5, 4, 3),
    "fea": (2, 3.5, 2),
    "xxx": (3, 3, 3),
}
IEMOCAP_LABEL_CYCLE = ["neu", "hap", "sad", "ang", "exc", "neu", "fru", "sad", "ang", "hap", "xxx", "exc"]


def iemocap_layout(
    speakers: int = 10,
    seed: int = 0,
    utterances_per_dialog: int = 12,
    dialogs_per_session: int = 2,
    sessions: int = 5,
    **_,
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """IEMOCAP: ``Session{n}/sentences/wav/<dialog>/<utt>.wav`` (16 kHz), EmoEvaluation and transcriptions.

    Each session has a female and a male speaker (``speakers`` is fixed at
    2 x ``sessions``); dialogs alternate the speakers' turns, as in the corpus.
    """
    items: list[Utterance] = []
    dialogs: dict[tuple[int, str], list[Utterance]] = {}
    for n in range(1, sessions + 1):
        voices = {g: make_speaker(f"Ses{n:02d}{g}", "en-us", male=g == "M", index=n - 1, seed=seed) for g in "FM"}
        for d in range(dialogs_per_session):
            lead = "FM"[d % 2]
            kind = f"impro{d // 2 + 1:02d}" if d % 4 < 2 else f"script{d // 4 + 1:02d}_1"
            dialog = f"Ses{n:02d}{lead}_{kind}"
            rng = random.Random(f"{seed}-{dialog}")
            turn_index = {"F": 0, "M": 0}
            clock = rng.uniform(1, 5)
            for u in range(utterances_per_dialog):
                g = "FM"[u % 2]
                utt_id = f"{dialog}_{g}{turn_index[g]:03d}"
                turn_index[g] += 1
                label = IEMOCAP_LABEL_CYCLE[(u + 3 * n + d) % len(IEMOCAP_LABEL_CYCLE)]
                style, strong = IEMOCAP_STYLES[label]
                text = ENGLISH_SENTENCES[rng.randrange(len(ENGLISH_SENTENCES))]
                start = clock
                clock += rng.uniform(2.0, 4.0)
                vad = tuple(min(5.0, max(1.0, v + rng.choice([-0.5, 0, 0.5]))) for v in IEMOCAP_VAD[label])
                utt = Utterance(
                    f"Session{n}/sentences/wav/{dialog}/{utt_id}.wav",
                    text,
                    voices[g],
                    style,
                    strong,
                    16000,
                    meta={"id": utt_id, "label": label, "start": start, "end": clock, "vad": vad},
                )
                items.append(utt)
                dialogs.setdefault((n, dialog), []).append(utt)
                clock += rng.uniform(0.2, 1.0)

    def write_labels(root: Path) -> None:
        for (n, dialog), utts in dialogs.items():
            emo = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = []
            for utt in utts:
                m = utt.meta
                v, a, d = m["vad"]
                emo.append(f"[{m['start']:.4f} - {m['end']:.4f}]\t{m['id']}\t{m['label']}\t[{v:.4f}, {a:.4f}, {d:.4f}]")
                emo.append(f"C-E1:\t{m['label'].capitalize()};\t()")
                emo.append(f"A-E3:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()")
                emo.append("")
                trans.append(f"{m['id']} [{m['start']:08.4f}-{m['end']:08.4f}]: {utt.text}.")
            trans.insert(1, "M: [BREATHING]")  # non-utterance lines occur in the real files
            atomic_write_text(root / f"Session{n}/dialog/EmoEvaluation/{dialog}.txt", "\n".join(emo) + "\n")
            atomic_write_text(root / f"Session{n}/dialog/transcriptions/{dialog}.txt", "\n".join(trans) + "\n")

    return items, write_labels


FINNISH_SENTENCES = [
    "Aurinko paistoi koko päivän järven rannalla",
    "Hän luki kirjeen uudelleen ja laski sen pöydälle",
    "Juna lähti asemalta aivan ajallaan",
    "Metsässä oli hiljaista ja lunta satoi hiljalleen",
    "Me istuimme keittiössä ja joimme kahvia",
    "Kaupungin kadut olivat täynnä ihmisiä",
]
FESC_STYLES = {"neutral": "neutral", "sadness": "sad", "joy": "happy", "affection": "affection", "anger": "angry"}


def fesc_layout(
    speakers: int = 9, seed: int = 0, utterances_per_emotion: int = 4, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """FESC (generic listing): ``wav/<speaker>/<speaker>_<emotion>_<nn>.wav`` at 44.1 kHz plus ``listing.csv`` (``path,speaker,emotion``).

    Speakers ``FESC_01`` .. ``FESC_09``; odd numbers male (5 male, 4 female as in the corpus).
    """
    items = []
    for k in range(1, speakers + 1):
        name = f"FESC_{k:02d}"
        spk = make_speaker(name, "fi", male=k % 2 == 1, index=k, seed=seed)
        for emotion, style in FESC_STYLES.items():
            for i in range(utterances_per_emotion):
                text = FINNISH_SENTENCES[(i + k) % len(FINNISH_SENTENCES)]
                items.append(
                    Utterance(
                        f"wav/{name}/{name}_{emotion}_{i + 1:02d}.wav",
                        text,
                        spk,
                        style,
                        False,
                        44100,
                        meta={"speaker": name, "emotion": emotion},
                    )
                )

    def write_labels(root: Path) -> None:
        rows = ["path,speaker,emotion"] + [f"{u.relpath},{u.meta['speaker']},{u.meta['emotion']}" for u in items]
        atomic_write_text(root / "listing.csv", "\n".join(rows) + "\n")

    return items, write_labels


MSP_STYLES = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "surprised", "X": "calm"}
MSP_LABEL_CYCLE = ["A", "H", "S", "N", "N", "H", "A", "S", "X", "O"]


def msp_improv_layout(
    speakers: int = 12, seed: int = 0, utterances_per_speaker: int = 10, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """MSP-IMPROV: ``session{n}/S{nn}{E}/{scenario}/MSP-IMPROV-S{nn}{E}-{spk}-{scenario}-{turn}.wav`` (44.1 kHz) and ``Evaluation.txt``.

    Six sessions, speakers ``F0n``/``M0n`` (session n); the consensus label is
    the second field of each ``Evaluation.txt`` summary line (ids spelt ``UTD-IMPROV-...avi`` there).
    """
    sessions = min(6, max(1, speakers // 2))
    items = []
    for n in range(1, sessions + 1):
        for g in "FM":
            spk_id = f"{g}{n:02d}"
            spk = make_speaker(spk_id, "en-us", male=g == "M", index=n + (6 if g == "M" else 0), seed=seed)
            for i in range(utterances_per_speaker):
                label = MSP_LABEL_CYCLE[(i + n) % len(MSP_LABEL_CYCLE)]
                intended = "AHSN"[(i + 2 * n) % 4]
                sentence = f"S{(i % 15) + 1:02d}{intended}"
                scenario = "PRST"[i % 4]
                utt_id = f"MSP-IMPROV-{sentence}-{spk_id}-{scenario}-{g}{'M' if g == 'F' else 'F'}{i + 1:02d}"
                text = ENGLISH_SENTENCES[(i + n) % len(ENGLISH_SENTENCES)]
                items.append(
                    Utterance(
                        f"session{n}/{sentence}/{scenario}/{utt_id}.wav",
                        text,
                        spk,
                        MSP_STYLES[label],
                        False,
                        44100,
                        meta={"id": utt_id, "label": label},
                    )
                )

    def write_labels(root: Path) -> None:
        lines = []
        rng = random.Random(f"{seed}-msp")
        for u in items:
            avi = u.meta["id"].replace("MSP-IMPROV", "UTD-IMPROV") + ".avi"
            lines.append(
                f"{avi}; {u.meta['label']}; A:{rng.uniform(1, 5):.6f}; V:{rng.uniform(1, 5):.6f}; D:{rng.uniform(1, 5):.6f}; N:{rng.randint(5, 12)}.000000"
            )
            lines.append("Evaluator01; Angry; ; ")
            lines.append("")
        atomic_write_text(root / "Evaluation.txt", "\n".join(lines))

    return items, write_labels
