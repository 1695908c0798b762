"""Your own corpus (data_prep.listing): non-English labels, label maps, the three protocols, bad rows named by line."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from sklearn.model_selection import StratifiedGroupKFold

from data_prep.errors import AudioFileError, PreparationError, SpeakerLeakageError
from data_prep.listing import main, prepare_listing

SPEAKERS = ["anna", "bernd", "chloé", "dörte", "émile", "franz", "gisèle", "hugo", "inès"]
LABELS = ["Freude", "Wut", "Ärger", "Trauer", "Ekel"]  # two utterances each per speaker
GIVEN = {**dict.fromkeys(SPEAKERS[:6], "train"), SPEAKERS[6]: "dev", SPEAKERS[7]: "test", SPEAKERS[8]: "test"}
LABEL_MAP = "Ärger=Wut,Ekel=drop"
TARGETS = "arousal,valence"  # every listing column must be known: the numeric ones are named


def write_wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).normal(0, 0.1, 400).astype("float32")
    soundfile.write(str(path), noise, 8000)  # 0.05 s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A listing corpus (audio/<speaker>/<n>.wav, listing.csv with split, transcript, arousal, valence)."""
    root = tmp_path_factory.mktemp("mine")
    rows = []
    for s, speaker in enumerate(SPEAKERS):
        for n, (label, take) in enumerate((lab, t) for lab in LABELS for t in range(2)):
            path = f"audio/{speaker}/{speaker}_{n:02d}.wav"
            write_wav(root / path, 100 * s + n)
            rows.append([path, label, speaker, GIVEN[speaker], f"phrase {n} de {speaker}", 0.1 * take + s, "-0.5"])
    with open(root / "listing.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "Label", "speaker", "split", "transcript", "arousal", "valence"])
        writer.writerows(rows)
    return root


def load_all(paths):
    return {split: json.loads(Path(p).read_text()) for split, p in paths.items()}


def speakers_of(manifests):
    return {split: {e["speaker"] for e in m.values()} for split, m in manifests.items()}


def reference_kfold(listing: Path, n_folds: int, fold: int, seed: int = 1986):
    """Test, validation and training speakers computed directly with sklearn from the raw CSV and a hand-made map."""
    mapping = {"Ärger": "Wut", "Ekel": None}
    with open(listing, encoding="utf-8") as handle:
        pairs = [(r["speaker"], mapping.get(r["Label"], r["Label"])) for r in csv.DictReader(handle)]
    pairs = sorted(p for p in pairs if p[1] is not None)

    def held_out(subset, n_splits, k):
        groups, y = np.array([s for s, _ in subset]), np.array([c for _, c in subset])
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        rest, held = list(splitter.split(np.zeros(len(y)), y, groups))[k - 1]
        return set(groups[rest]), set(groups[held])

    train_speakers, test = held_out(pairs, n_folds, fold)
    train, valid = held_out([p for p in pairs if p[0] in train_speakers], min(n_folds, len(train_speakers)), 1)
    return {"train": train, "valid": valid, "test": test}


def test_kfold_with_a_label_map_is_speaker_disjoint_and_matches_sklearn(corpus, tmp_path):
    save = tmp_path / "fold2"
    options = ["--protocol", "kfold", "--folds", "3", "--fold", "2", "--label-map", LABEL_MAP]
    main([str(corpus), str(save), "--listing", "listing.csv", *options, "--targets", "arousal,valence"])
    manifests = load_all({s: save / f"{s}.json" for s in ("train", "valid", "test")})
    by_split = speakers_of(manifests)
    assert by_split == reference_kfold(corpus / "listing.csv", 3, 2)
    assert not (by_split["train"] & by_split["valid"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["valid"] & by_split["test"]) and set().union(*by_split.values()) == set(SPEAKERS)
    entries = {k: v for m in manifests.values() for k, v in m.items()}
    assert len(entries) == len(SPEAKERS) * 8  # the two Ekel takes of each speaker dropped
    assert {e["emo"] for e in entries.values()} == {"Freude", "Wut", "Trauer"}
    for m in manifests.values():  # stratified: every split has every class, Ärger counted as Wut
        assert {e["emo"] for e in m.values()} == {"Freude", "Wut", "Trauer"}
    merged = entries["anna_04"]  # anna's first Ärger take
    assert (merged["emo"], merged["emo_original"], merged["speaker"]) == ("Wut", "Ärger", "anna")
    assert merged["wav"] == "{data_root}/audio/anna/anna_04.wav" and merged["duration"] == 0.05
    assert merged["transcript"] == "phrase 4 de anna" and (merged["arousal"], merged["valence"]) == (0.0, -0.5)
    assert entries["chloé_05"]["arousal"] == pytest.approx(2.1)
    summary = json.loads((save / "summary.json").read_text())
    assert summary["labels"] == ["Freude", "Trauer", "Wut"] and summary["dropped_by_label_map"] == {"Ekel": 18}
    assert (summary["protocol"], summary["n_folds"], summary["fold"], summary["label_key"]) == ("kfold", 3, 2, "emo")
    assert summary["splits"]["test"]["classes"]["Wut"] == 4 * len(by_split["test"])


def test_kfold_test_folds_partition_the_speakers(corpus, tmp_path):
    tests = []
    for fold in (1, 2, 3):
        paths = prepare_listing(
            corpus, tmp_path / str(fold), "listing.csv", "kfold", n_folds=3, fold=fold, targets=TARGETS
        )
        tests.append(speakers_of(load_all(paths))["test"])
    assert sorted(s for t in tests for s in t) == sorted(SPEAKERS)
    with pytest.raises(PreparationError, match="at least as many speakers"):
        prepare_listing(corpus, tmp_path / "x", "listing.csv", "kfold", n_folds=10, fold=1, targets=TARGETS)


def test_loso_tests_one_speaker_and_validates_on_the_next(corpus, tmp_path):
    paths = prepare_listing(
        corpus,
        tmp_path / "loso",
        corpus / "listing.csv",
        "loso",
        fold=9,
        labels="Freude,Wut,Ärger,Trauer,Ekel",
        targets=TARGETS,
    )
    by_split = speakers_of(load_all(paths))
    ordered = sorted(SPEAKERS)
    assert by_split == {"test": {ordered[8]}, "valid": {ordered[0]}, "train": set(ordered[1:8])}
    with pytest.raises(PreparationError, match="folds 1..9, not 10"):
        prepare_listing(corpus, tmp_path / "x", "listing.csv", "loso", fold=10, targets=TARGETS)


def test_given_uses_the_split_column_and_checks_leakage(corpus, tmp_path):
    by_split = speakers_of(
        load_all(prepare_listing(corpus, tmp_path / "given", "listing.csv", "given", targets=TARGETS))
    )
    assert by_split == {"train": set(SPEAKERS[:6]), "valid": {SPEAKERS[6]}, "test": set(SPEAKERS[7:])}
    text = (corpus / "listing.csv").read_text(encoding="utf-8").splitlines()
    text[1] = text[1].replace(",train,", ",test,")  # one of anna's files in test, the others in train
    (tmp_path / "leak.csv").write_text("\n".join(text), encoding="utf-8")
    with pytest.raises(SpeakerLeakageError, match="speaker anna is in splits test, train"):
        prepare_listing(corpus, tmp_path / "leak", tmp_path / "leak.csv", "given", targets=TARGETS)
    (tmp_path / "nosplit.csv").write_text("path,label,speaker\naudio/anna/anna_00.wav,Freude,anna\n")
    with pytest.raises(PreparationError, match="no 'split' column"):
        prepare_listing(corpus, tmp_path / "nosplit", tmp_path / "nosplit.csv", "given")


def test_folder_tree(tmp_path):
    data = tmp_path / "tree"
    for s, speaker in enumerate(["Jean", "Łukasz", "María", "Noor"]):
        for label in ("colère", "joie", "tristesse"):
            for n in range(2):
                write_wav(data / label / speaker / f"{n:03d}.wav", s * 10 + n)
    paths = prepare_listing(
        data, tmp_path / "prep", protocol="loso", fold=2, from_folders=True, label_map="tristesse=drop"
    )
    manifests = load_all(paths)
    ordered = sorted(["Jean", "Łukasz", "María", "Noor"])  # Ł sorts last
    assert speakers_of(manifests) == {"train": {ordered[0], ordered[3]}, "valid": {ordered[2]}, "test": {ordered[1]}}
    entry = manifests["test"][f"joie__{ordered[1]}__001"]
    assert (entry["emo"], entry["speaker"], entry["wav"]) == (
        "joie",
        ordered[1],
        f"{{data_root}}/joie/{ordered[1]}/001.wav",
    )
    assert {e["emo"] for m in manifests.values() for e in m.values()} == {"colère", "joie"}
    write_wav(data / "joie" / "stray.wav", 99)
    with pytest.raises(PreparationError, match=r"not at <label>/<speaker>/<file>: joie/stray.wav"):
        prepare_listing(data, tmp_path / "prep", protocol="loso", fold=2, from_folders=True)


def test_second_call_does_nothing_and_a_change_reprepares(corpus, tmp_path):
    listing = tmp_path / "listing.csv"
    listing.write_bytes((corpus / "listing.csv").read_bytes())
    kwargs = {"protocol": "kfold", "n_folds": 3, "fold": 1, "label_map": LABEL_MAP, "targets": TARGETS}
    paths = prepare_listing(corpus, tmp_path / "prep", listing, **kwargs)
    stamps = {k: Path(p).stat().st_mtime_ns for k, p in paths.items()}
    assert prepare_listing(corpus, tmp_path / "prep", listing, **kwargs) == paths
    assert {k: Path(p).stat().st_mtime_ns for k, p in paths.items()} == stamps
    prepare_listing(corpus, tmp_path / "prep", listing, **{**kwargs, "label_map": "Ekel=drop"})
    assert "Ärger" in {e["emo"] for m in load_all(paths).values() for e in m.values()}
    options = json.loads((tmp_path / "prep" / "prepare_options.json").read_text())["options"]
    assert options["label_map"] == {"Ekel": "drop"}
    stamps = {k: Path(p).stat().st_mtime_ns for k, p in paths.items()}
    listing.write_text(listing.read_text(encoding="utf-8").replace("Ekel", "Ekel "), encoding="utf-8")
    prepare_listing(corpus, tmp_path / "prep", listing, **{**kwargs, "label_map": "Ekel=drop"})  # edited listing
    assert any(Path(p).stat().st_mtime_ns != stamps[k] for k, p in paths.items())


def test_bad_rows_are_all_named_with_their_lines_before_any_audio_is_read(tmp_path):
    data = tmp_path / "data"
    for name in ("a/1.wav", "a/2.wav", "b/1.wav", "b/2.wav"):
        write_wav(data / name, 0)
    (data / "broken.wav").write_bytes(b"RIFF garbage")
    lines = [
        "path,label,speaker,split,arousal,gender",
        "broken.wav,joie,anna,train,0.5,f",  # 2: fine as a row; its audio would fail later
        "a/nope.wav,joie,anna,train,0.5,f",  # 3: missing file
        "a/1.wav,,anna,train,0.5,f",  # 4: empty label
        "a/2.wav,joie,anna,train,beaucoup,f",  # 5: non-numeric target
        "a/1.wav,colère,anna,train,0.1,f",  # 6: listed twice
        "b/1.wav,joie,bernd,holdout,0.1,m",  # 7: unknown split
        "b/2.wav,joie,,train,0.1,m,extra",  # 8: empty speaker, extra field
        "../outside.wav,joie,bernd,train,0.1,m",  # 9: outside the corpus folder
    ]
    listing = tmp_path / "bad.csv"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PreparationError) as err:
        prepare_listing(data, tmp_path / "prep", listing, "given", targets="arousal")
    message = str(err.value)
    assert not isinstance(err.value, AudioFileError) and "9 problem(s), nothing prepared" in message
    for expected in [
        "line 1: unknown column 'gender'",
        "line 3: file not found: a/nope.wav",
        "line 4: empty label",
        "line 5: arousal = 'beaucoup' is not a number",
        "line 6: a/1.wav listed twice (also line 4)",
        "line 7: split 'holdout' is not train, valid or test",
        "line 8: empty speaker",
        "line 8: 7 fields, the header has 6",
        "line 9: ../outside.wav is not inside the corpus folder",
    ]:
        assert expected in message, (expected, message)
    assert message.index("line 3:") < message.index("line 8: 7 fields")  # in the listing's order
    assert "line 2" not in message and not (tmp_path / "prep" / "prepare_options.json").exists()


def test_bad_columns_labels_and_maps_are_named(corpus, tmp_path):
    (tmp_path / "cols.csv").write_text("path;label;Sprecher\naudio/anna/anna_00.wav;Freude;anna\n")
    with pytest.raises(PreparationError, match="line 1: no 'speaker' column"):
        prepare_listing(corpus, tmp_path / "a", tmp_path / "cols.csv", "loso")
    with pytest.raises(PreparationError, match=r"line 1: no 'dominance' column \(named in targets\)"):
        prepare_listing(corpus, tmp_path / "b", "listing.csv", "loso", targets="arousal,valence,dominance")
    with pytest.raises(PreparationError, match=r"unknown label value\(s\) 'Ekel'"):
        prepare_listing(
            corpus, tmp_path / "c", "listing.csv", "loso", labels="Freude,Wut,Ärger,Trauer", targets=TARGETS
        )
    with pytest.raises(PreparationError, match=r"label map names label\(s\) \['Angst'\] that no row has"):
        prepare_listing(corpus, tmp_path / "d", "listing.csv", "loso", label_map="Angst=Wut", targets=TARGETS)
    with pytest.raises(PreparationError, match="line 1: unknown column 'valence'"):
        prepare_listing(corpus, tmp_path / "f", "listing.csv", "loso", targets="arousal")
    with pytest.raises(PreparationError, match="unknown protocol 'random'"):
        prepare_listing(corpus, tmp_path / "e", "listing.csv", "random")


def test_missing_files_are_dropped_with_allow_subset_and_bad_audio_named(corpus, tmp_path):
    text = (corpus / "listing.csv").read_text(encoding="utf-8")
    listing = tmp_path / "more.csv"
    listing.write_text(text + "audio/anna/gone.wav,Freude,anna,train,phrase,0.1,0.1\n", encoding="utf-8")
    paths = prepare_listing(corpus, tmp_path / "prep", listing, "loso", fold=1, allow_subset=True, targets=TARGETS)
    assert sum(len(m) for m in load_all(paths).values()) == len(SPEAKERS) * 10
    data = tmp_path / "bad_audio"
    for n, speaker in enumerate(["a", "b", "c"]):
        for label in ("x", "y"):
            write_wav(data / label / speaker / "1.wav", n)
    (data / "y" / "c" / "1.wav").write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty file") as err:
        prepare_listing(data, tmp_path / "p2", protocol="loso", from_folders=True)
    assert str(data / "y" / "c" / "1.wav") in str(err.value)
