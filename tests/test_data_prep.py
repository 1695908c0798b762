"""Every corpus's preparation on its synthetic layout: exact contents, folds, leakage, robustness."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_prep import preparation, splits
from data_prep.errors import AudioFileError, PreparationError
from data_prep.fesc import prepare_fesc
from data_prep.healthcall30 import prepare_healthcall30
from data_prep.hume_prosody import EMOTIONS as HUME_EMOTIONS
from data_prep.hume_prosody import prepare_hume_prosody
from data_prep.iemocap import prepare_iemocap
from data_prep.msp_improv import prepare_msp_improv
from data_prep.ravdess import prepare_ravdess
from data_prep.synthetic import generate_corpus
from data_prep.synthetic_acted import iemocap_layout

SIZES = {
    "IEMOCAP": {"utterances_per_dialog": 6, "dialogs_per_session": 2},
    "FESC": {"speakers": 9, "utterances_per_emotion": 1},
    "HealthCall30": {"speakers": 5, "files_per_speaker": 4},
    "Hume-Prosody": {"speakers": 5, "files_per_speaker": 3},
    "MSP-IMPROV": {"speakers": 12, "utterances_per_speaker": 3},
    "RAVDESS": {"speakers": 5, "repetitions": 1, "statements": 1, "emotions": ["neutral", "sad", "angry"]},
}
PREPARE = {
    "IEMOCAP": lambda d, s, **kw: prepare_iemocap(d, s, allow_subset=True, **kw),
    "FESC": lambda d, s, **kw: prepare_fesc(d, s, **kw),
    "HealthCall30": lambda d, s, **kw: prepare_healthcall30(d, s, **kw),
    "Hume-Prosody": lambda d, s, **kw: prepare_hume_prosody(d, s, **kw),
    "MSP-IMPROV": lambda d, s, **kw: prepare_msp_improv(d, s, allow_subset=True, **kw),
    "RAVDESS": lambda d, s, **kw: prepare_ravdess(d, s, allow_subset=True, **kw),
}
# One option per corpus whose change must re-prepare.
OPTION_CHANGE = {
    "IEMOCAP": {"fold": 2},
    "FESC": {"fold": 2},
    "HealthCall30": {"skip_bad_files": True},
    "Hume-Prosody": {"skip_bad_files": True},
    "MSP-IMPROV": {"fold": 2},
    "RAVDESS": {"merge_calm": False},
}


@pytest.fixture(scope="session")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return {name: generate_corpus(name, root / name, progress=False, **opts) for name, opts in SIZES.items()}


def load(path):
    return json.loads(Path(path).read_text())


def speakers(path):
    return {e["speaker"] for e in load(path).values()}


def copy(corpora, name, tmp_path):
    return Path(shutil.copytree(corpora[name], tmp_path / name))


def first_wav(folder):
    return sorted(Path(folder).rglob("*.wav"))[0]


# ------------------------------------------------------------------ shared behaviour, every corpus
@pytest.mark.parametrize("name", sorted(PREPARE))
def test_idempotent_then_reprepares_on_option_change(corpora, tmp_path, name):
    paths = PREPARE[name](corpora[name], tmp_path / "prep")
    assert set(paths) == {"train", "valid", "test"}
    stamps = {k: Path(p).stat().st_mtime_ns for k, p in paths.items()}
    assert PREPARE[name](corpora[name], tmp_path / "prep") == paths
    assert {k: Path(p).stat().st_mtime_ns for k, p in paths.items()} == stamps
    PREPARE[name](corpora[name], tmp_path / "prep", **OPTION_CHANGE[name])
    assert any(Path(p).stat().st_mtime_ns != stamps[k] for k, p in paths.items())
    saved = load(tmp_path / "prep" / "prepare_options.json")["options"]
    assert all(saved[k] == v for k, v in OPTION_CHANGE[name].items())
    summary = load(tmp_path / "prep" / "summary.json")
    assert summary["speaker_independent"] is True and set(summary["splits"]) == {"train", "valid", "test"}
    assert (tmp_path / "prep" / "summary.md").read_text().startswith("| split | utts | speakers | hours |")


@pytest.mark.parametrize("name", sorted(PREPARE))
def test_missing_folder_is_named(tmp_path, name):
    with pytest.raises(PreparationError, match="folder not found") as err:
        PREPARE[name](tmp_path / "nowhere", tmp_path / "prep")
    assert str(tmp_path / "nowhere") in str(err.value)


@pytest.mark.parametrize("name", sorted(PREPARE))
def test_corrupt_wav_is_named_or_skipped(corpora, tmp_path, name):
    corpus = copy(corpora, name, tmp_path)
    bad = first_wav(corpus)
    bad.write_bytes(b"RIFF\x00\x00garbage that is no wave file")
    with pytest.raises(AudioFileError, match="cannot be decoded") as err:
        PREPARE[name](corpus, tmp_path / "prep")
    assert str(bad) in str(err.value)
    assert not (tmp_path / "prep" / "prepare_options.json").exists()
    bad.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        PREPARE[name](corpus, tmp_path / "prep")
    paths = PREPARE[name](corpus, tmp_path / "prep", skip_bad_files=True)
    entries = {k: v for p in paths.values() for k, v in load(p).items()}
    assert bad.stem not in entries and all(v["wav"].startswith("{data_root}/") for v in entries.values())


@pytest.mark.parametrize("name", sorted(PREPARE))
def test_interrupted_preparation_leaves_no_half_written_manifest(corpora, tmp_path, monkeypatch, name):
    calls = {"n": 0}
    real_replace = preparation.os.replace

    def interrupted(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the second manifest: the first one is already in place
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(preparation.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        PREPARE[name](corpora[name], tmp_path / "prep")
    monkeypatch.setattr(preparation.os, "replace", real_replace)
    left = sorted(p.name for p in (tmp_path / "prep").iterdir())
    assert not [n for n in left if n.endswith(".tmp")], left
    assert "prepare_options.json" not in left  # not marked done, so the next call redoes it
    for name_ in left:
        load(tmp_path / "prep" / name_)  # whatever exists is complete JSON
    paths = PREPARE[name](corpora[name], tmp_path / "prep")
    assert all(load(p) for p in paths.values())
    assert (tmp_path / "prep" / "prepare_options.json").exists()


# ------------------------------------------------------------------ IEMOCAP, checked by hand
LOSO = {k: (f"Ses0{k}F", f"Ses0{k}M") for k in range(1, 6)}  # (valid, test)
LO2SO = {
    1: ("Ses01M", "Ses01F"),
    2: ("Ses01F", "Ses01M"),
    3: ("Ses02M", "Ses02F"),
    4: ("Ses02F", "Ses02M"),
    5: ("Ses03M", "Ses03F"),
    6: ("Ses03F", "Ses03M"),
    7: ("Ses04M", "Ses04F"),
    8: ("Ses04F", "Ses04M"),
    9: ("Ses05M", "Ses05F"),
    10: ("Ses05F", "Ses05M"),
}
ALL_SPEAKERS = {f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"}


@pytest.mark.parametrize("protocol,table", [("loso", LOSO), ("lo2so", LO2SO)])
def test_iemocap_folds_by_hand(corpora, tmp_path, protocol, table):
    for fold, (valid, test) in table.items():
        paths = prepare_iemocap(
            corpora["IEMOCAP"], tmp_path / f"{protocol}{fold}", protocol=protocol, fold=fold, allow_subset=True
        )
        assert speakers(paths["valid"]) == {valid}
        assert speakers(paths["test"]) == {test}
        assert speakers(paths["train"]) == ALL_SPEAKERS - {valid, test}
    with pytest.raises(PreparationError, match=f"folds 1..{len(table)}"):
        prepare_iemocap(corpora["IEMOCAP"], tmp_path / "x", protocol=protocol, fold=len(table) + 1, allow_subset=True)


def test_iemocap_session_folds_by_utterance_id(corpora, tmp_path):
    """``session`` (segment_triplet, w2v2_info_recovery): test = session k, valid = session k+1 (5 -> 1), train = the other three."""
    truth = {u.meta["id"]: u.meta["label"] for u in iemocap_layout(**SIZES["IEMOCAP"])[0]}
    kept = {utt for utt, label in truth.items() if label in ("neu", "hap", "exc", "sad", "ang")}
    for fold, valid in ((1, 2), (3, 4), (5, 1)):
        paths = prepare_iemocap(
            corpora["IEMOCAP"], tmp_path / f"session{fold}", protocol="session", fold=fold, allow_subset=True
        )
        splits = {name: load(path) for name, path in paths.items()}
        assert set(splits["test"]) == {u for u in kept if u.startswith(f"Ses0{fold}")}
        assert set(splits["valid"]) == {u for u in kept if u.startswith(f"Ses0{valid}")}
        assert set(splits["train"]) == {u for u in kept if not u.startswith((f"Ses0{fold}", f"Ses0{valid}"))}
        assert speakers(paths["test"]) == {f"Ses0{fold}F", f"Ses0{fold}M"}
        for (
            entries
        ) in splits.values():  # every row carries its session and dialog (the probe's leakage check reads them)
            assert all(e["session"] == int(u[3:5]) and e["dialog"] == u.rsplit("_", 1)[0] for u, e in entries.items())
    with pytest.raises(PreparationError, match="folds 1..5"):
        prepare_iemocap(corpora["IEMOCAP"], tmp_path / "x", protocol="session", fold=6, allow_subset=True)


def test_iemocap_loso_reverse_option(corpora, tmp_path):
    paths = prepare_iemocap(
        corpora["IEMOCAP"], tmp_path / "p", protocol="loso", fold=2, valid_gender="M", allow_subset=True
    )
    assert speakers(paths["valid"]) == {"Ses02M"} and speakers(paths["test"]) == {"Ses02F"}


def test_iemocap_speakers_labels_and_exact_entry(corpora, tmp_path):
    paths = prepare_iemocap(corpora["IEMOCAP"], tmp_path / "p", protocol="loso", fold=1, allow_subset=True)
    entries = {k: v for p in paths.values() for k, v in load(p).items()}
    # the generator's own record of what it wrote: an independent source of truth
    truth = {u.meta["id"]: u.meta["label"] for u in iemocap_layout(**SIZES["IEMOCAP"])[0]}
    four = {k: v for k, v in truth.items() if v in ("neu", "hap", "exc", "sad", "ang")}
    assert set(entries) == set(four)
    for utt_id, entry in entries.items():
        assert entry["speaker"] == utt_id[:5] + utt_id.rsplit("_", 1)[1][0]  # Ses01F_impro01_M003 -> Ses01M
        assert entry["emo"] == ("hap" if four[utt_id] == "exc" else four[utt_id])
        assert entry["emo_original"] == four[utt_id]
    assert any(v == "exc" for v in four.values()) and any(v in ("fru", "xxx") for v in truth.values())
    # a dialog led by the female speaker still holds male turns, spoken by Ses01M
    assert entries["Ses01F_impro01_M000"]["speaker"] == "Ses01M"
    entry = entries["Ses01F_impro01_F000"]
    emo_file = (corpora["IEMOCAP"] / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").read_text().splitlines()
    summary_line = next(line for line in emo_file if "\tSes01F_impro01_F000\t" in line)
    vad = [float(x) for x in summary_line.split("\t")[3].strip("[]").split(",")]
    transcript = next(
        line
        for line in (corpora["IEMOCAP"] / "Session1/dialog/transcriptions/Ses01F_impro01.txt").read_text().splitlines()
        if line.startswith("Ses01F_impro01_F000 ")
    )
    assert entry == {
        "wav": "{data_root}/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
        "duration": entry["duration"],
        "speaker": "Ses01F",
        "gender": "F",
        "session": 1,
        "dialog": "Ses01F_impro01",
        "emo": {"exc": "hap"}.get(truth["Ses01F_impro01_F000"], truth["Ses01F_impro01_F000"]),
        "emo_original": truth["Ses01F_impro01_F000"],
        "valence": vad[0],
        "activation": vad[1],
        "dominance": vad[2],
        "transcript": transcript.split("]: ", 1)[1],
    }
    assert entry["duration"] > 0.5


def test_iemocap_full_label_set_and_random_split(corpora, tmp_path):
    paths = prepare_iemocap(corpora["IEMOCAP"], tmp_path / "all", labels="all", allow_subset=True)
    labels = {e["emo"] for p in paths.values() for e in load(p).values()}
    assert "exc" in labels and "fru" in labels and "xxx" not in labels
    paths = prepare_iemocap(corpora["IEMOCAP"], tmp_path / "rand", protocol="random", allow_subset=True)
    summary = load(tmp_path / "rand" / "summary.json")
    assert summary["speaker_independent"] is False
    assert "speaker-dependent" in (tmp_path / "rand" / "summary.md").read_text()
    sizes = [len(load(p)) for p in paths.values()]
    assert sum(sizes) == sum(
        len(load(p)) for p in prepare_iemocap(corpora["IEMOCAP"], tmp_path / "l", allow_subset=True).values()
    )


def test_iemocap_expected_counts_and_unknown_label(corpora, tmp_path):
    with pytest.raises(PreparationError, match="5531"):
        prepare_iemocap(corpora["IEMOCAP"], tmp_path / "p")
    corpus = copy(corpora, "IEMOCAP", tmp_path)
    emo = corpus / "Session2/dialog/EmoEvaluation/Ses02F_impro01.txt"
    text = emo.read_text()
    first_label = text.split("\n")[2].split("\t")[2]
    emo.write_text(text.replace(f"\t{first_label}\t", "\tbored\t", 1))
    with pytest.raises(PreparationError, match="unknown emotion value.*'bored'.*values seen: .*bored \\(1\\)") as err:
        prepare_iemocap(corpus, tmp_path / "p2", allow_subset=True)
    assert str(emo) in str(err.value)


# ------------------------------------------------------------------ FESC
def test_fesc_folds_and_entries(corpora, tmp_path):
    names = [f"FESC_0{k}" for k in range(1, 10)]
    for fold in range(1, 10):
        paths = prepare_fesc(corpora["FESC"], tmp_path / f"f{fold}", fold=fold)
        assert speakers(paths["test"]) == {names[fold - 1]}
        assert speakers(paths["valid"]) == {names[fold % 9]}
        assert speakers(paths["train"]) == set(names) - {names[fold - 1], names[fold % 9]}
    entry = load(paths["test"])["FESC_09_joy_01"]
    assert entry == {
        "wav": "{data_root}/wav/FESC_09/FESC_09_joy_01.wav",
        "duration": entry["duration"],
        "speaker": "FESC_09",
        "emo": "joy",
    }
    assert sorted({e["emo"] for e in load(paths["train"]).values()}) == [
        "affection",
        "anger",
        "joy",
        "neutral",
        "sadness",
    ]
    assert load(tmp_path / "f9" / "summary.json")["audio_formats"] == {"44100 Hz, 1 ch": 45}
    with pytest.raises(PreparationError, match="folds 1..9"):
        prepare_fesc(corpora["FESC"], tmp_path / "x", fold=10)


def test_any_rate_and_channel_count_is_accepted_and_described(corpora, tmp_path):
    import soundfile

    corpus = copy(corpora, "FESC", tmp_path)
    wav = corpus / "wav/FESC_03/FESC_03_anger_01.wav"
    audio, rate = soundfile.read(wav)
    soundfile.write(wav, np.stack([audio[::2], audio[::2]], axis=1), rate // 2)
    paths = prepare_fesc(corpus, tmp_path / "p", fold=1)
    assert load(tmp_path / "p" / "summary.json")["audio_formats"] == {"44100 Hz, 1 ch": 44, "22050 Hz, 2 ch": 1}
    entry = {k: v for p in paths.values() for k, v in load(p).items()}["FESC_03_anger_01"]
    assert entry["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
    assert "22050 Hz, 2 ch (1 files)" in (tmp_path / "p" / "summary.md").read_text()


def test_fesc_unknown_label_and_speaker_count(corpora, tmp_path):
    corpus = copy(corpora, "FESC", tmp_path)
    listing = corpus / "listing.csv"
    listing.write_text(listing.read_text().replace(",joy\n", ",joyful\n", 2))
    with pytest.raises(
        PreparationError, match="'joyful'.*values seen: affection \\(9\\), anger \\(9\\), joy \\(7\\), joyful \\(2\\)"
    ):
        prepare_fesc(corpus, tmp_path / "p")
    lines = (corpora["FESC"] / "listing.csv").read_text().splitlines()
    listing.write_text("\n".join(line for line in lines if "FESC_09" not in line) + "\n")
    with pytest.raises(PreparationError, match="8 speakers.*FESC has 9"):
        prepare_fesc(corpus, tmp_path / "p")


# ------------------------------------------------------------------ HealthCall30
def test_healthcall30_labels_and_masked_test(corpora, tmp_path):
    paths = prepare_healthcall30(corpora["HealthCall30"], tmp_path / "p")
    train = load(paths["train"])
    assert train["train_0001"] == {
        "wav": "{data_root}/wav/train_0001.wav",
        "duration": train["train_0001"]["duration"],
        "speaker": "train_0001",
        "partition": "train",
        "labelled": True,
        "request": "affil",
        "complaint": "no",
        "joint": "no_affil",
    }
    assert {e["joint"] for e in train.values()} == {"no_affil", "no_presta", "yes_affil", "yes_presta"}
    assert all(e["joint"] == f"{e['complaint']}_{e['request']}" for e in train.values())
    test = load(paths["test"])
    assert test and all(
        set(e) == {"wav", "duration", "speaker", "partition", "labelled"} and not e["labelled"] for e in test.values()
    )
    assert load(tmp_path / "p" / "summary.json")["masked_partitions"] == ["test"]
    # label strings are normalised (case, whitespace)
    corpus = copy(corpora, "HealthCall30", tmp_path)
    lab = corpus / "lab/train.csv"
    lab.write_text(lab.read_text().replace(",affil,no", ", Affil ,NO"))
    assert load(prepare_healthcall30(corpus, tmp_path / "q")["train"])["train_0001"]["joint"] == "no_affil"


def test_healthcall30_unknown_label_and_missing_audio(corpora, tmp_path):
    corpus = copy(corpora, "HealthCall30", tmp_path)
    lab = corpus / "lab/devel.csv"
    lab.write_text(lab.read_text().replace(",presta,", ",prestation,", 1))
    with pytest.raises(
        PreparationError,
        match="unknown request value.*'prestation'.*values seen: affil \\(2\\), presta \\(1\\), prestation \\(1\\)",
    ) as err:
        prepare_healthcall30(corpus, tmp_path / "p")
    assert str(lab) in str(err.value)
    shutil.copy(corpora["HealthCall30"] / "lab/devel.csv", lab)
    (corpus / "wav/devel_0002.wav").unlink()
    with pytest.raises(PreparationError, match="1 listed file.*devel_0002.wav"):
        prepare_healthcall30(corpus, tmp_path / "p")
    assert "devel_0002" not in load(prepare_healthcall30(corpus, tmp_path / "p", allow_subset=True)["valid"])
    lab = corpus / "lab/train.csv"
    lab.write_text(lab.read_text().replace(",affil,no", ",?,?", 1))
    with pytest.raises(PreparationError, match="some rows are labelled and some masked \\(e.g. lines \\[2\\]\\)"):
        prepare_healthcall30(corpus, tmp_path / "p", allow_subset=True)


# ------------------------------------------------------------------ Hume-Prosody
def test_hume_prosody_intensities(corpora, tmp_path):
    paths = prepare_hume_prosody(corpora["Hume-Prosody"], tmp_path / "p")
    rows = (corpora["Hume-Prosody"] / "lab/train.csv").read_text().splitlines()
    assert rows[0] == "filename," + ",".join(HUME_EMOTIONS)
    name, *values = rows[1].split(",")
    entry = load(paths["train"])[name[:-4]]
    assert entry == {
        "wav": f"{{data_root}}/wav/{name}",
        "duration": entry["duration"],
        "speaker": name[:-4],
        "partition": "train",
        "labelled": True,
        "intensities": [float(v) for v in values],
        "dominant": HUME_EMOTIONS[[float(v) for v in values].index(1.0)],
    }
    assert all(not e["labelled"] and "intensities" not in e for e in load(paths["test"]).values())


def test_hume_prosody_bad_values(corpora, tmp_path):
    corpus = copy(corpora, "Hume-Prosody", tmp_path)
    lab = corpus / "lab/devel.csv"
    lines = lab.read_text().splitlines()
    cells = lines[2].split(",")
    cells[3] = "high"
    lab.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(PreparationError, match=f"devel.csv, line 3: {HUME_EMOTIONS[2]} = 'high' is not a number"):
        prepare_hume_prosody(corpus, tmp_path / "p")
    cells[3] = "1.5"
    lab.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(PreparationError, match="outside \\[0, 1\\]"):
        prepare_hume_prosody(corpus, tmp_path / "p")
    (corpus / "lab/test.csv").write_text("filename,Anger\n1.wav,?\n")
    shutil.copy(corpora["Hume-Prosody"] / "lab/devel.csv", lab)
    with pytest.raises(PreparationError, match="missing column.*Boredom"):
        prepare_hume_prosody(corpus, tmp_path / "p")


# ------------------------------------------------------------------ MSP-IMPROV
def test_msp_improv_folds_and_entries(corpora, tmp_path):
    for fold in range(1, 7):
        paths = prepare_msp_improv(corpora["MSP-IMPROV"], tmp_path / f"f{fold}", fold=fold, allow_subset=True)
        valid_session = fold % 6 + 1
        assert speakers(paths["test"]) == {f"F0{fold}", f"M0{fold}"}
        assert speakers(paths["valid"]) == {f"F0{valid_session}", f"M0{valid_session}"}
        assert len(speakers(paths["train"])) == 8
    evaluation = (corpora["MSP-IMPROV"] / "Evaluation.txt").read_text().splitlines()
    line = next(line for line in evaluation if "-F06-" in line and "; X;" not in line and "; O;" not in line)
    utt_id = line.split(".avi")[0].replace("UTD-IMPROV", "MSP-IMPROV")
    entry = load(paths["test"])[utt_id]
    sentence, scenario = utt_id.split("-")[2], utt_id.split("-")[4]
    code = line.split("; ")[1]
    assert entry == {
        "wav": f"{{data_root}}/session6/{sentence}/{scenario}/{utt_id}.wav",
        "duration": entry["duration"],
        "speaker": "F06",
        "session": 6,
        "emo": {"A": "ang", "H": "hap", "S": "sad", "N": "neu"}[code],
        "arousal": float(line.split("A:")[1].split(";")[0]),
        "valence": float(line.split("V:")[1].split(";")[0]),
        "dominance": float(line.split("D:")[1].split(";")[0]),
    }
    all_entries = {k for p in paths.values() for k in load(p)}
    assert not any(
        ("; X;" in line or "; O;" in line) and line.split(".avi")[0].replace("UTD", "MSP") in all_entries
        for line in evaluation
    )


def test_msp_improv_unknown_label_and_count(corpora, tmp_path):
    with pytest.raises(PreparationError, match="7798"):
        prepare_msp_improv(corpora["MSP-IMPROV"], tmp_path / "p")
    corpus = copy(corpora, "MSP-IMPROV", tmp_path)
    evaluation = corpus / "Evaluation.txt"
    evaluation.write_text(evaluation.read_text().replace("; H; ", "; Q; ", 1))
    with pytest.raises(PreparationError, match="unknown consensus label value.*'Q'"):
        prepare_msp_improv(corpus, tmp_path / "p", allow_subset=True)


def test_leave_one_speaker_out_rejects_single_speaker():
    with pytest.raises(PreparationError, match="two speakers"):
        splits.leave_one_speaker_out(["only"], 1)


@pytest.mark.parametrize(
    "name,label_file",
    [
        ("IEMOCAP", "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"),
        ("FESC", "listing.csv"),
        ("HealthCall30", "lab/devel.csv"),
        ("MSP-IMPROV", "Evaluation.txt"),
    ],
)
def test_editing_a_label_file_reprepares(corpora, tmp_path, name, label_file):
    corpus = copy(corpora, name, tmp_path)
    paths = PREPARE[name](corpus, tmp_path / "prep")
    stamp = Path(paths["train"]).stat().st_mtime_ns
    target = corpus / label_file
    target.write_text(target.read_text() + "\n")
    PREPARE[name](corpus, tmp_path / "prep")
    assert Path(paths["train"]).stat().st_mtime_ns != stamp


def test_corpus_behind_a_symbolic_link(corpora, tmp_path):
    link = tmp_path / "linked_corpus"
    link.symlink_to(corpora["FESC"], target_is_directory=True)
    paths = prepare_fesc(link, tmp_path / "p", fold=1)
    assert all(e["wav"].startswith("{data_root}/wav/") for p in paths.values() for e in load(p).values())
