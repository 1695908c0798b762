"""Synthetic layouts of the ComParE 2023 challenge packages: HealthCall30 and Hume-Prosody.

Callers are split across the challenge partitions (60/20/20 %), the test
labels are masked, and ``transcripts.csv`` holds what was said.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from data_prep.hume_prosody import EMOTIONS  # the corpus's nine intensities, in its CSV order
from data_prep.synthetic_speech import Style, Utterance, make_speaker
from speechbrain_ext.utils.fileio import atomic_write_text


def challenge_partition(index: int, speakers: int) -> str:
    """ComParE-style partition of the ``index``-th synthetic speaker: 60 % train, 20 % devel, the rest test.

    Example
    -------
    >>> [challenge_partition(k, 5) for k in range(5)]
    ['train', 'train', 'train', 'devel', 'test']
    """
    n_train = max(1, round(speakers * 0.6))
    n_devel = max(1, round(speakers * 0.2))
    return "train" if index < n_train else "devel" if index < n_train + n_devel else "test"


# HealthCall30: the request type decides the words, the complaint the tone.
# What the caller says: an opening, the request (what the call is about) and
# whether it is a complaint, each from a few phrasings, so that the words carry
# both labels but devel and test callers say sentences no training caller said.
HEALTHCALL_OPENINGS = ["Bonjour madame", "Oui bonjour", "Allô bonjour", "Excusez-moi", "Bonjour monsieur", "Bonsoir"]
HEALTHCALL_REQUESTS = {
    "affil": [
        "je voudrais mettre à jour mon adhésion à la mutuelle",
        "ma fille doit être ajoutée à mon contrat",
        "j'ai changé d'adresse pour mon affiliation",
        "je souhaite modifier les bénéficiaires de mon contrat",
    ],
    "presta": [
        "je n'ai pas reçu le remboursement de mes lunettes",
        "combien est remboursée une consultation chez le dentiste",
        "ma facture d'hôpital n'a pas été prise en charge",
        "le remboursement de mes soins n'est pas arrivé",
    ],
}
HEALTHCALL_COMPLAINTS = {
    "no": ["merci beaucoup", "je voulais simplement savoir", "si c'est possible"],
    "yes": ["c'est vraiment inadmissible", "je suis très mécontent", "ça fait trois fois que j'appelle"],
}
# How the caller sounds: the request sets pitch and rate (affiliation calls
# brisk and high, benefit calls slow and low), a complaint adds loudness and
# a rough voice.
HEALTHCALL_STYLES = {
    ("no", "affil"): ("happy", False),
    ("yes", "affil"): ("angry", True),
    ("no", "presta"): ("sad", False),
    ("yes", "presta"): ("disgust", True),
}


def healthcall30_layout(
    speakers: int = 12, seed: int = 0, files_per_speaker: int = 8, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """HealthCall30 (ComParE 2023 Requests): ``wav/<partition>_NNNN.wav`` (16 kHz) and ``lab/{train,devel,test}.csv``.

    ``filename,request,complaint``; the test partition's labels are masked
    (``?``) as in the challenge release. Callers are split across partitions
    (60/20/20 %), each caller in one partition only. Both labels are in the
    words (:data:`HEALTHCALL_REQUESTS`, :data:`HEALTHCALL_COMPLAINTS`) and in
    the prosody (:data:`HEALTHCALL_STYLES`), so the text and the audio branch
    can each learn them. ``transcripts.csv`` (``filename,transcript``) beside
    ``lab/`` holds what was said: the transcript a perfect ASR would give,
    for the text branch's tests (a tiny random Whisper transcribes nothing
    useful).
    """
    items = []
    counters: dict[str, int] = {}
    for k in range(speakers):
        partition = challenge_partition(k, speakers)
        spk = make_speaker(f"caller{k:02d}", "fr", male=k % 2 == 0, index=k, seed=seed)
        for i in range(files_per_speaker):
            complaint, request = [("no", "affil"), ("no", "presta"), ("yes", "affil"), ("yes", "presta")][(i + k) % 4]
            style, strong = HEALTHCALL_STYLES[(complaint, request)]
            counters[partition] = counters.get(partition, 0) + 1
            name = f"{partition}_{counters[partition]:04d}.wav"
            rng = random.Random(f"{seed}-healthcall-{k}-{i}")
            text = f"{rng.choice(HEALTHCALL_OPENINGS)}, {rng.choice(HEALTHCALL_REQUESTS[request])}, {rng.choice(HEALTHCALL_COMPLAINTS[complaint])}"
            items.append(
                Utterance(
                    f"wav/{name}",
                    text,
                    spk,
                    style,
                    strong,
                    16000,
                    meta={"partition": partition, "request": request, "complaint": complaint},
                )
            )

    def write_labels(root: Path) -> None:
        for partition in ("train", "devel", "test"):
            rows = ["filename,request,complaint"]
            for u in items:
                if u.meta["partition"] == partition:
                    labels = ("?", "?") if partition == "test" else (u.meta["request"], u.meta["complaint"])
                    rows.append(f"{Path(u.relpath).name},{labels[0]},{labels[1]}")
            atomic_write_text(root / f"lab/{partition}.csv", "\n".join(rows) + "\n")
        write_transcripts(root, items)

    return items, write_labels


def write_transcripts(root: Path, items: Sequence[Utterance]) -> None:
    """``transcripts.csv`` (``filename,transcript``): what each file says, as a perfect ASR would write it."""
    import pandas as pd

    frame = pd.DataFrame({"filename": [Path(u.relpath).name for u in items], "transcript": [u.text for u in items]})
    atomic_write_text(root / "transcripts.csv", frame.to_csv(index=False, lineterminator="\n"))


# Each clip is a point of an arousal x valence plane: arousal sets the rate,
# loudness and roughness, valence the pitch, its range and the brightness;
# each emotion's intensity
# falls off with the distance from its own point (then scaled so that the
# clip's top emotion is 1.0, as in the devel rows seen). The intensities are
# therefore a smooth function of the prosody, which a model can learn.
HUME_CENTRES = {
    "Anger": (0.9, 0.1),
    "Boredom": (0.15, 0.35),
    "Calmness": (0.2, 0.75),
    "Concentration": (0.5, 0.5),
    "Determination": (0.75, 0.4),
    "Excitement": (0.9, 0.9),
    "Interest": (0.6, 0.75),
    "Sadness": (0.15, 0.05),
    "Tiredness": (0.0, 0.45),
}
HUME_WIDTH = 0.3
# What is said follows the valence (low, middle, high), so a text model can learn some of it.
HUME_VOCALISATIONS = [
    ["No, no, not this time", "Oh no, why does this always happen", "I really cannot stand this any more"],
    ["Well, here we go again", "Hmm, let me think about it", "Okay, that is one way to see it"],
    ["Oh really, that is wonderful news", "Yes, that is exactly it", "What a lovely surprise this is"],
]


def hume_style(arousal: float, valence: float) -> Style:
    """The prosody of a point of the arousal x valence plane.

    Example
    -------
    >>> hume_style(1.0, 0.0)
    Style(pitch=-15.0, pitch_range=50.0, rate=130.0, volume=150.0, effects=('overdrive 20.0', 'lowpass 1500'))
    """
    effects = (
        f"overdrive {2.0 + 18.0 * arousal:.1f}",
        f"lowpass {1500.0 + 5500.0 * valence:.0f}",
    )  # a rougher voice with arousal, a duller one with low valence
    return Style(-15.0 + 40.0 * valence, 50.0 + 120.0 * valence, 75.0 + 55.0 * arousal, 70.0 + 80.0 * arousal, effects)


def hume_intensities(arousal: float, valence: float) -> dict[str, float]:
    """The nine intensities of a point of the plane, the largest scaled to 1.0.

    Example
    -------
    >>> values = hume_intensities(0.9, 0.1)
    >>> values["Anger"], values["Excitement"] < 0.1
    (1.0, True)
    """
    raw = {
        e: math.exp(-((arousal - a) ** 2 + (valence - v) ** 2) / (2 * HUME_WIDTH**2))
        for e, (a, v) in HUME_CENTRES.items()
    }
    top = max(raw.values())
    return {e: round(value / top, 4) for e, value in raw.items()}


def hume_prosody_layout(
    speakers: int = 12, seed: int = 0, files_per_speaker: int = 9, **_
) -> tuple[list[Utterance], Callable[[Path], None]]:
    """Hume-Prosody (ComParE 2023 Emotion Share): ``wav/<numeric id>.wav`` (16 kHz) and ``lab/{train,devel,test}.csv``.

    Nine intensities in [0, 1] per clip, the top one at 1.0 (as in the devel
    rows seen), all tied to the clip's prosody (:func:`hume_style`,
    :func:`hume_intensities`); the test partition is masked. Speakers are
    split across partitions (60/20/20 %). ``transcripts.csv`` holds what was said.
    """
    items = []
    next_id = 10000
    for k in range(speakers):
        partition = challenge_partition(k, speakers)
        spk = make_speaker(f"hume{k:02d}", "en-us", male=k % 2 == 0, index=k, seed=seed)
        rng = random.Random(f"{seed}-hume-{k}")
        for _ in range(files_per_speaker):
            arousal, valence = rng.random(), rng.random()
            intensities = hume_intensities(arousal, valence)
            next_id += rng.randint(1, 9)
            text = rng.choice(HUME_VOCALISATIONS[min(2, int(valence * 3))])
            meta = {"partition": partition, "intensities": intensities, "arousal": arousal, "valence": valence}
            dominant = max(intensities, key=intensities.get)
            items.append(
                Utterance(
                    f"wav/{next_id}.wav",
                    text,
                    spk,
                    dominant,
                    False,
                    16000,
                    meta=meta,
                    style=hume_style(arousal, valence),
                )
            )

    def write_labels(root: Path) -> None:
        for partition in ("train", "devel", "test"):
            rows = ["filename," + ",".join(EMOTIONS)]
            for u in items:
                if u.meta["partition"] == partition:
                    values = ["?"] * 9 if partition == "test" else [f"{u.meta['intensities'][e]:.4f}" for e in EMOTIONS]
                    rows.append(f"{Path(u.relpath).name}," + ",".join(values))
            atomic_write_text(root / f"lab/{partition}.csv", "\n".join(rows) + "\n")
        write_transcripts(root, items)

    return items, write_labels
