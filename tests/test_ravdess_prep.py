"""RAVDESS preparation on the synthetic layout and on real sample files."""

import json
import os
import shutil

import pytest
import soundfile

from data_prep.errors import AudioFileError, PreparationError, SpeakerLeakageError
from data_prep.ravdess import prepare_ravdess
from tests.conftest import RAVDESS_SAMPLE


@pytest.fixture
def prepared(synthetic_ravdess, tmp_path):
    return prepare_ravdess(synthetic_ravdess, tmp_path / "prep", allow_subset=True), synthetic_ravdess


def load(path):
    with open(path) as handle:
        return json.load(handle)


def test_exact_manifest_entry(prepared):
    paths, corpus = prepared
    train = load(paths["train"])
    utt = "03-01-02-02-01-02-03"  # calm, strong, statement 1, repetition 2, actor 3
    info = soundfile.info(str(corpus / "Actor_03" / f"{utt}.wav"))
    assert train[utt] == {
        "wav": "{data_root}/Actor_03/03-01-02-02-01-02-03.wav",
        "duration": round(info.frames / info.samplerate, 4),
        "speaker": "Actor_03",
        "gender": "male",
        "emo": "neutral",
        "intensity": "strong",
        "statement": 1,
    }
    assert info.samplerate == 48000


def test_splits_counts_and_speakers(prepared):
    paths, _ = prepared
    manifests = {name: load(path) for name, path in paths.items()}
    speakers = {name: {e["speaker"] for e in m.values()} for name, m in manifests.items()}
    assert speakers == {
        "train": {f"Actor_{a:02d}" for a in range(1, 9)},
        "valid": {"Actor_21", "Actor_22"},
        "test": {"Actor_23", "Actor_24"},
    }
    # 60 speech files per actor; the song files (03-02-*) are ignored
    assert {name: len(m) for name, m in manifests.items()} == {"train": 480, "valid": 120, "test": 120}


def test_seven_class_merge(prepared, synthetic_ravdess, tmp_path):
    paths, _ = prepared
    test = load(paths["test"])
    labels = [e["emo"] for e in test.values()]
    assert "calm" not in labels
    assert sorted(set(labels)) == ["angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    # per actor: 4 neutral + 8 calm -> 12 neutral; 8 of each other emotion
    assert labels.count("neutral") == 24 and labels.count("sad") == 16
    eight = load(prepare_ravdess(synthetic_ravdess, tmp_path / "eight", merge_calm=False, allow_subset=True)["test"])
    eight_labels = [e["emo"] for e in eight.values()]
    assert eight_labels.count("calm") == 16 and eight_labels.count("neutral") == 8


def test_idempotent_and_option_change_reprepares(synthetic_ravdess, tmp_path):
    save = tmp_path / "prep"
    paths = prepare_ravdess(synthetic_ravdess, save, allow_subset=True)
    stamps = {k: os.stat(p).st_mtime_ns for k, p in paths.items()}
    prepare_ravdess(synthetic_ravdess, save, allow_subset=True)
    assert {k: os.stat(p).st_mtime_ns for k, p in paths.items()} == stamps
    prepare_ravdess(synthetic_ravdess, save, allow_subset=True, merge_calm=False)
    assert {k: os.stat(p).st_mtime_ns for k, p in paths.items()} != stamps
    assert "calm" in {e["emo"] for e in load(paths["train"]).values()}


def test_summary_written(prepared):
    paths, _ = prepared
    summary = load(os.path.join(os.path.dirname(paths["train"]), "summary.json"))
    assert summary["splits"]["test"]["utterances"] == 120
    assert summary["splits"]["test"]["speakers"] == {"Actor_23": 60, "Actor_24": 60}
    assert summary["speaker_independent"] is True
    assert summary["audio_formats"] == {"48000 Hz, 1 ch": 120 + 120 + 60 * 8}


def test_missing_folder(tmp_path):
    with pytest.raises(PreparationError, match="RAVDESS folder not found") as err:
        prepare_ravdess(tmp_path / "nope", tmp_path / "prep")
    assert str(tmp_path / "nope") in str(err.value)


def test_incomplete_tree_needs_allow_subset(synthetic_ravdess, tmp_path):
    with pytest.raises(PreparationError, match="expected 60 speech files for each of 24 actors.*allow_subset"):
        prepare_ravdess(synthetic_ravdess, tmp_path / "prep")


@pytest.fixture
def corpus_copy(synthetic_ravdess, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(synthetic_ravdess, copy)
    return copy


def test_corrupt_wav_named(corpus_copy, tmp_path):
    bad = corpus_copy / "Actor_21" / "03-01-05-01-01-01-21.wav"
    bad.write_bytes(b"RIFF garbage that is not a wave file" * 4)
    with pytest.raises(AudioFileError, match="cannot be decoded") as err:
        prepare_ravdess(corpus_copy, tmp_path / "prep", allow_subset=True)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "prep" / "train.json").exists()
    paths = prepare_ravdess(corpus_copy, tmp_path / "prep", allow_subset=True, skip_bad_files=True)
    assert "03-01-05-01-01-01-21" not in load(paths["valid"]) and len(load(paths["valid"])) == 119


def test_empty_wav_named(corpus_copy, tmp_path):
    bad = corpus_copy / "Actor_01" / "03-01-01-01-01-01-01.wav"
    bad.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty file") as err:
        prepare_ravdess(corpus_copy, tmp_path / "prep", allow_subset=True)
    assert str(bad) in str(err.value)


def test_unknown_emotion_code(corpus_copy, tmp_path):
    shutil.copy(
        corpus_copy / "Actor_01" / "03-01-01-01-01-01-01.wav", corpus_copy / "Actor_01" / "03-01-09-01-01-01-01.wav"
    )
    with pytest.raises(PreparationError, match="unknown emotion code '09'"):
        prepare_ravdess(corpus_copy, tmp_path / "prep", allow_subset=True)


def test_overlapping_splits_rejected(synthetic_ravdess, tmp_path):
    with pytest.raises(PreparationError, match="actor 21 is listed in splits"):
        prepare_ravdess(
            synthetic_ravdess,
            tmp_path / "prep",
            allow_subset=True,
            splits={"train": [1, 21], "valid": [21], "test": [23]},
        )


def test_leakage_check_runs_on_written_splits(monkeypatch, synthetic_ravdess, tmp_path):
    # Force a leak past the split logic: the library check must still stop the write.
    import data_prep.preparation as preparation

    real = preparation.write_split_manifests

    def leaky(save_folder, splits, label_key, *args):
        first = next(iter(splits["train"].values()))
        splits["test"]["leaked"] = dict(first)
        return real(save_folder, splits, label_key, *args)

    monkeypatch.setattr(preparation, "write_split_manifests", leaky)
    with pytest.raises(SpeakerLeakageError, match="Actor_01 is in splits test, train"):
        prepare_ravdess(synthetic_ravdess, tmp_path / "prep", allow_subset=True)
    assert not (tmp_path / "prep" / "test.json").exists()


@pytest.mark.skipif(not RAVDESS_SAMPLE.is_dir(), reason="../shared/data/ravdess_sample is absent")
def test_real_sample_files(tmp_path):
    paths = prepare_ravdess(RAVDESS_SAMPLE, tmp_path / "prep", allow_subset=True, splits={"train": [1], "test": [20]})
    train, test = load(paths["train"]), load(paths["test"])
    assert len(train) == len(test) == 30
    entry = train["03-01-05-02-01-01-01"]
    assert entry["emo"] == "angry" and entry["intensity"] == "strong" and entry["gender"] == "male"
    assert test["03-01-02-01-01-01-20"]["emo"] == "neutral" and test["03-01-02-01-01-01-20"]["gender"] == "female"
    assert all(2.0 < e["duration"] < 7.0 for e in train.values())
    assert soundfile.info(str(RAVDESS_SAMPLE / "Actor_01" / "03-01-05-02-01-01-01.wav")).samplerate == 48000
