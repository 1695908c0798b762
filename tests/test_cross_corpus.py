"""Cross-corpus evaluation (python -m speechbrain_ext.analysis cross-corpus): the train x test UAR matrix in a shared label space."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from sklearn.metrics import balanced_accuracy_score

from data_prep.listing import prepare_listing
from speechbrain_ext.analysis.__main__ import main
from speechbrain_ext.serving.inference import EmotionClassifier
from tests.model_folders import random_model_folder

SHARED = ["neu", "hap", "sad", "ang"]
# Run 1 knows angry/neutral/sad; run 2 has German classes, Wut and Ärger merged, Ekel dropped; corpus B has calm
# (merged into neu) and fear (dropped).
LABEL_MAP = "angry=ang,neutral=neu,happy=hap,calm=neu,fear=drop,Freude=hap,Trauer=sad,Wut=ang,Ärger=ang,Ekel=drop"
HAND = {
    "angry": "ang",
    "neutral": "neu",
    "happy": "hap",
    "calm": "neu",
    "sad": "sad",
    "Freude": "hap",
    "Trauer": "sad",
    "Wut": "ang",
    "Ärger": "ang",
}  # fear and Ekel: dropped


def tone(path: Path, k: int) -> str:
    """A short tone whose pitch, loudness and length differ with ``k`` (random-weight models answer differently)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate, seconds = 16000, 0.3 + 0.05 * (k % 5)
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(k).normal(0, 0.05, t.size)
    soundfile.write(str(path), (0.1 + 0.05 * (k % 3)) * np.sin(2 * np.pi * (120 + 37 * k) * t) + noise, rate)
    return str(path)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Corpus A: a German listing prepared by data_prep.listing ({data_root} paths); corpus B: an English manifest."""
    root = tmp_path_factory.mktemp("cross")
    lines = ["path,label,speaker,split"]
    for s, (speaker, split) in enumerate([("anna", "train"), ("bernd", "valid"), ("clara", "test"), ("dora", "train")]):
        for n, label in enumerate(["Freude", "Trauer", "Wut", "Ärger", "neutral", "Ekel"]):
            tone(root / "A" / speaker / f"{n}.wav", 10 * s + n)
            lines.append(f"{speaker}/{n}.wav,{label},{speaker},{split}")
    (root / "A" / "listing.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepare_listing(root / "A", root / "prep_A", protocol="given")
    prep_b = root / "prep_B"
    prep_b.mkdir()
    labels_b = ["angry", "happy", "neutral", "sad", "calm", "fear", "sad", "angry"]
    entries = {f"b{k}": {"wav": tone(root / "B" / f"b{k}.wav", 100 + k), "emo": lab} for k, lab in enumerate(labels_b)}
    (prep_b / "test.json").write_text(json.dumps(entries), encoding="utf-8")
    return {"A": root / "prep_A", "B": prep_b}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models):
    """Run 1: a recipe run folder (exported by the verb); run 2: an exported model folder with German classes."""
    root, tiny = tmp_path_factory.mktemp("cross_runs"), tiny_models
    english, _ = random_model_folder("recipes/RAVDESS/hparams/baseline.yaml", tiny, root / "r1")
    (root / "r1" / "run" / "save" / "CKPT+random" / "CKPT.yaml").write_text(
        "UAR: 0.5\nend-of-epoch: true\nselection_metric: UAR\nselection_mode: max\nunixtime: 0\n"
    )
    german, _ = random_model_folder(
        "recipes/Custom/hparams/baseline.yaml",
        tiny,
        root / "r2",
        labels=["Ekel", "Freude", "Trauer", "Wut", "Ärger", "neutral"],
    )
    state = torch.load(german / "model.ckpt", map_location="cpu")
    state["head.w.weight"] *= 0.08  # flatter probabilities: Wut + Ärger, summed, decide some utterances
    torch.save(state, german / "model.ckpt")
    return {"english": (root / "r1" / "run", english), "german": (german, german)}


def hand_scores(model_folder: Path, prep: Path, tmp_path: Path) -> tuple[float, dict]:
    """sklearn's UAR of the argmax of summed shared-class probabilities, mapped here by hand, and each decision."""
    model = EmotionClassifier.from_hparams(source=str(model_folder), savedir=str(tmp_path / model_folder.parent.name))
    options = prep / "prepare_options.json"
    root = json.loads(options.read_text())["options"]["data_folder"] if options.is_file() else ""
    truth, predicted, ids = [], [], []
    for utt, entry in json.loads((prep / "test.json").read_text()).items():
        if entry["emo"] not in HAND:
            continue
        log_probs = model.classify_file(entry["wav"].replace("{data_root}", root))[0][0]
        probs = log_probs.exp().tolist()
        summed = {s: sum(p for lab, p in zip(model.labels, probs) if HAND.get(lab) == s) for s in SHARED}
        truth.append(HAND[entry["emo"]])
        predicted.append(max(summed, key=summed.get))
        ids.append(utt)
    return balanced_accuracy_score(truth, predicted), dict(zip(ids, predicted))


def test_cross_corpus_matrix_equals_sklearn_on_hand_mapped_predictions(corpora, runs, tmp_path):
    out = tmp_path / "out"
    main(
        [
            "cross-corpus",
            "--runs",
            *(f"{name}={run}" for name, (run, _) in runs.items()),
            "--corpora",
            *(f"{name}={prep}" for name, prep in corpora.items()),
            "--label-map",
            LABEL_MAP,
            "--n-boot",
            "200",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    table = pd.read_csv(out / "cross_corpus.csv")
    assert len(table) == 4
    for row in table.itertuples():
        expected, decisions = hand_scores(runs[row.train][1], corpora[row.test], tmp_path)
        assert row.n == len(decisions) == {"A": 5, "B": 7}[row.test]  # A: 6 labels, Ekel dropped; B: fear dropped
        assert row.UAR == pytest.approx(expected, abs=1e-6), (row.train, row.test)
        written = pd.read_csv(out / "predictions" / f"{row.train}__{row.test}.csv", dtype=str)
        assert dict(zip(written["id"], written["predicted_shared"])) == decisions
        assert 0 <= row.UAR_low <= row.UAR_high <= 1
    markdown = (out / "cross_corpus.md").read_text()
    assert "| english | " in markdown and "| german | " in markdown and "train \\ test | A | B" in markdown
    assert (out / "cross_corpus.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shared_mass = {
        run: pd.read_csv(out / "predictions" / f"{run}__A.csv")[[f"p_{s}" for s in SHARED]].sum(axis=1) for run in runs
    }
    np.testing.assert_allclose(shared_mass["english"], 1.0, atol=1e-5)  # every class mapped
    assert (shared_mass["german"] < 1 - 1e-6).all()  # Ekel's probability left out


def test_unmapped_label_is_named_before_any_model_runs(corpora, tmp_path):
    with pytest.raises(SystemExit, match=r"\['Trauer'\] are not in the shared label space"):
        main(
            [
                "cross-corpus",
                "--runs",
                str(tmp_path / "no_model_needed"),
                "--corpora",
                f"A={corpora['A']}",
                "--label-map",
                "Freude=hap,Wut=ang,Ärger=ang,Ekel=drop,neutral=neu",
                "--out",
                str(tmp_path / "out"),
            ]
        )
