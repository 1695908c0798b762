"""The synthetic RAVDESS: real layout, 48 kHz, deterministic, emotions acoustically distinct."""

import re

import numpy as np
import soundfile

from data_prep.synthetic import generate_corpus
from data_prep.synthetic_acted import ravdess_actor_ids


def test_layout_and_format(synthetic_ravdess):
    actors = sorted(p.name for p in synthetic_ravdess.iterdir())
    assert actors == [f"Actor_{a:02d}" for a in ravdess_actor_ids(12)]
    speech = sorted(synthetic_ravdess.glob("Actor_*/03-01-*.wav"))
    assert len(speech) == 12 * 60
    pattern = re.compile(r"^03-01-0[1-8]-0[12]-0[12]-0[12]-(\d\d)\.wav$")
    for path in speech:
        match = pattern.match(path.name)
        assert match and path.parent.name == f"Actor_{match.group(1)}"
    assert not list(synthetic_ravdess.glob("Actor_*/03-01-01-02-*"))  # neutral has no strong intensity
    info = soundfile.info(str(speech[0]))
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")


def test_deterministic(tmp_path):
    kwargs = dict(speakers=5, seed=3, repetitions=1, statements=1, emotions=["sad"], progress=False)
    a, b = generate_corpus("RAVDESS", tmp_path / "a", **kwargs), generate_corpus("RAVDESS", tmp_path / "b", **kwargs)
    for path in sorted(a.glob("*/*.wav")):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes()


def test_emotions_differ_in_rate_and_loudness(synthetic_ravdess):
    def stats(code):
        durations, rms = [], []
        for path in synthetic_ravdess.glob(f"Actor_*/03-01-{code}-01-*.wav"):
            audio, sr = soundfile.read(str(path))
            durations.append(len(audio) / sr)
            rms.append(np.sqrt(np.mean(audio**2)))
        return np.mean(durations), np.mean(rms)

    sad, angry = stats("04"), stats("05")
    assert sad[0] > 1.3 * angry[0]  # sad is read slower
    assert angry[1] > 1.5 * sad[1]  # and angry louder
