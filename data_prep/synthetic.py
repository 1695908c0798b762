"""Synthetic corpora in the real corpora's layouts, spoken by ``espeak-ng``.

No emotional speech corpus can be shipped or downloaded here, so tests and the
demo use look-alikes: the same folder trees, file names, sample rates and label
files as the real corpus, with sentences read in the corpus's language. Each
speaker is a distinct espeak-ng voice variant with its own base pitch and
speaking rate; each emotion has its own prosody (pitch, pitch range, rate,
loudness) and voice quality (a ``sox`` effect), jittered per utterance, so a
small model can learn it on held-out speakers without it being trivial.

Usage::

    python -m data_prep.synthetic --corpus RAVDESS --out /tmp/RAVDESS --speakers 12

Adding a corpus means adding a layout function to :data:`LAYOUTS` that lists
its utterances (path, text, speaker, emotion) and writes its label files.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from data_prep.hume_prosody import EMOTIONS  # the corpus's nine intensities, in its CSV order
from speechbrain_ext.utils.fileio import atomic_write_text


@dataclass(frozen=True)
class Style:
    """How an emotion changes a speaker's neutral voice.

    pitch: shift in percent; pitch_range, rate, volume: percent of neutral;
    effects: a ``sox`` effect chain with ``{k}`` scaled by intensity and jitter.
    """

    pitch: float
    pitch_range: float
    rate: float
    volume: float
    effects: tuple[str, ...] = ()


STYLES: dict[str, Style] = {
    "neutral": Style(0, 100, 100, 100),
    "calm": Style(-6, 70, 90, 85, ("lowpass {k:.0f}",)),
    "happy": Style(25, 170, 112, 115, ("treble {k:.1f}",)),
    "sad": Style(-15, 45, 75, 70, ("lowpass {k:.0f}",)),
    "angry": Style(8, 150, 118, 150, ("overdrive {k:.1f}",)),
    "fearful": Style(35, 80, 125, 90, ("tremolo 7 {k:.0f}",)),
    "disgust": Style(-10, 120, 80, 100, ("bass {k:.1f}",)),
    "surprised": Style(45, 220, 105, 120, ("highpass {k:.0f}",)),
    "affection": Style(5, 130, 85, 80, ("lowpass {k:.0f}",)),
}
# The ``{k}`` of each effect at normal intensity; strong intensity pushes it further.
EFFECT_STRENGTH = {
    "calm": 5000.0,
    "happy": 4.0,
    "sad": 2200.0,
    "angry": 8.0,
    "fearful": 45.0,
    "disgust": 7.0,
    "surprised": 350.0,
    "affection": 3500.0,
}
# Strong intensity scales the distance from neutral by this factor.
STRONG_FACTOR = 1.6

MALE_VOICES = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Lee", "travis"]
FEMALE_VOICES = ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "belinda", "linda", "steph"]


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak-ng voice and its habitual pitch and rate."""

    name: str
    language: str
    variant: str
    base_pitch: int
    base_speed: int


@dataclass(frozen=True)
class Utterance:
    """One file to synthesise, relative to the corpus root."""

    relpath: str
    text: str
    speaker: Speaker
    emotion: str
    strong: bool = False
    sample_rate: int = 16000
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    style: Style | None = None  # its own prosody and literal sox effects, instead of the emotion's


def make_speaker(name: str, language: str, male: bool, index: int, seed: int) -> Speaker:
    """A distinct voice: a variant from the gender's list plus a jittered base pitch/rate.

    Example
    -------
    >>> make_speaker("Actor_01", "en-us", True, 0, 1).variant
    'm1'
    """
    voices = MALE_VOICES if male else FEMALE_VOICES
    rng = random.Random(f"{seed}-{name}")
    return Speaker(
        name=name,
        language=language,
        variant=voices[index % len(voices)],
        base_pitch=rng.randint(35, 65),
        base_speed=rng.randint(150, 190),
    )


def ssml_and_effects(utt: Utterance, rng: random.Random) -> tuple[str, list[str]]:
    """The espeak-ng SSML text and the sox effect chain for one utterance.

    Example
    -------
    >>> spk = make_speaker("s", "en-us", True, 0, 0)
    >>> ssml, effects = ssml_and_effects(Utterance("a.wav", "Hi", spk, "angry"), random.Random(0))
    >>> ssml.startswith("<speak><prosody pitch=") and effects[0] == "overdrive"
    True
    """
    style = utt.style or STYLES[utt.emotion]
    factor = STRONG_FACTOR if utt.strong else 1.0

    def jitter(value: float, neutral: float, spread: float) -> float:
        return neutral + (value - neutral) * factor * rng.uniform(1 - spread, 1 + spread) + rng.gauss(0, 3)

    pitch = jitter(style.pitch, 0, 0.25)
    pitch_range = max(10.0, jitter(style.pitch_range, 100, 0.25))
    rate = max(40.0, jitter(style.rate, 100, 0.15))
    volume = max(20.0, jitter(style.volume, 100, 0.2))
    ssml = f'<speak><prosody pitch="{pitch:+.0f}%" range="{pitch_range:.0f}%" rate="{rate:.0f}%" volume="{volume:.0f}%">{utt.text}</prosody></speak>'
    effects: list[str] = []
    for template in style.effects:
        strength = EFFECT_STRENGTH.get(utt.emotion, 1.0) * rng.uniform(
            0.7, 1.3
        )  # an utterance's own style gives literal effects
        if utt.strong:
            # filters go lower/higher, gains go up: push away from a neutral setting
            strength = strength / 1.3 if template.startswith("lowpass") else strength * 1.3
        effects += template.format(k=strength).split()
    return ssml, effects


def synthesise(utt: Utterance, root: Path, seed: int) -> None:
    """Write one utterance to ``root/utt.relpath`` (atomically; skipped when present)."""
    target = root / utt.relpath
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}-{utt.relpath}")
    ssml, effects = ssml_and_effects(utt, rng)
    voice = f"{utt.speaker.language}+{utt.speaker.variant}"
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "out.wav")
        subprocess.run(
            [
                "espeak-ng",
                "-m",
                "-v",
                voice,
                "-p",
                str(utt.speaker.base_pitch),
                "-s",
                str(utt.speaker.base_speed),
                "-w",
                raw,
                ssml,
            ],
            check=True,
            capture_output=True,
        )
        # -G guards against clipping from loud styles, -D turns off (random) dither so a
        # seed gives the same bytes; 16-bit PCM at the corpus's rate
        subprocess.run(
            [
                "sox",
                "-G",
                "-D",
                raw,
                "-r",
                str(utt.sample_rate),
                "-b",
                "16",
                "-c",
                "1",
                out,
                *effects,
                "rate",
                "-h",
                str(utt.sample_rate),
            ],
            check=True,
            capture_output=True,
        )
        tmp_target = target.with_suffix(".tmp.wav")
        shutil.move(out, tmp_target)
        os.replace(tmp_target, target)


# ---------------------------------------------------------------- layouts
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


LAYOUTS: dict[str, Callable[..., tuple[list[Utterance], Callable[[Path], None]]]] = {
    "RAVDESS": ravdess_layout,
    "IEMOCAP": iemocap_layout,
    "FESC": fesc_layout,
    "HealthCall30": healthcall30_layout,
    "Hume-Prosody": hume_prosody_layout,
    "MSP-IMPROV": msp_improv_layout,
}


def generate_corpus(
    corpus: str,
    out: str | Path,
    speakers: int = 24,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    **layout_options,
) -> Path:
    """Synthesise ``corpus`` into ``out`` in its real layout; existing files are kept.

    Arguments
    ---------
    corpus : str
        A key of :data:`LAYOUTS` (``RAVDESS``, ``IEMOCAP``, ``FESC``,
        ``HealthCall30``, ``Hume-Prosody``, ``MSP-IMPROV``).
    out : str or Path
        Corpus root to write.
    speakers : int
        Number of speakers (the layout decides which ids they get).
    seed : int
        Seeds voices and per-utterance jitter; same seed, same corpus.
    workers : int, optional
        Parallel synthesis processes (default: CPU count).
    progress : bool
        Show a progress bar.
    **layout_options
        Passed to the layout (RAVDESS: ``repetitions``, ``statements``,
        ``emotions``, ``song``; IEMOCAP: ``utterances_per_dialog``,
        ``dialogs_per_session``, ``sessions``; FESC: ``utterances_per_emotion``;
        HealthCall30 and Hume-Prosody: ``files_per_speaker``; MSP-IMPROV:
        ``utterances_per_speaker``).

    Returns
    -------
    Path
        The corpus root.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} not found: install it (apt-get install -y espeak-ng sox, or run `make install`)"
            )
    if corpus not in LAYOUTS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(LAYOUTS)}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    items, write_labels = LAYOUTS[corpus](speakers=speakers, seed=seed, **layout_options)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda u: synthesise(u, root, seed), items)
        for _ in tqdm(jobs, total=len(items), desc=f"synthesising {corpus}", disable=not progress, unit="utt"):
            pass
    write_labels(root)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=2, help="RAVDESS: repetitions per sentence (1 or 2)")
    parser.add_argument("--statements", type=int, default=2, help="RAVDESS: statements (1 or 2)")
    parser.add_argument("--song", action="store_true", help="RAVDESS: also write a few song files (03-02-*)")
    parser.add_argument(
        "--per-speaker", type=int, default=None, help="other corpora: utterances per speaker (IEMOCAP: per dialog)"
    )
    args = parser.parse_args(argv)
    sizes = {}
    if args.per_speaker is not None:
        sizes = {
            "IEMOCAP": {"utterances_per_dialog": args.per_speaker},
            "FESC": {"utterances_per_emotion": max(1, args.per_speaker // 5)},
            "HealthCall30": {"files_per_speaker": args.per_speaker},
            "Hume-Prosody": {"files_per_speaker": args.per_speaker},
            "MSP-IMPROV": {"utterances_per_speaker": args.per_speaker},
        }.get(args.corpus, {})
    root = generate_corpus(
        args.corpus,
        args.out,
        speakers=args.speakers,
        seed=args.seed,
        repetitions=args.repetitions,
        statements=args.statements,
        song=args.song,
        **sizes,
    )
    print(f"wrote {args.corpus} to {root}")


if __name__ == "__main__":
    main()
