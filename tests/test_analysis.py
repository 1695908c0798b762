"""The analysis verbs (embed, probe, asr-ser, compare) on the suite's synthetic corpora and trained tiny runs.

Numbers are checked against references written here: scikit-learn pipelines
on the embedding files as saved, hand-counted agreement, scipy's cosine.
"""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.spatial.distance import cosine

from speechbrain_ext.analysis.__main__ import VERBS
from speechbrain_ext.analysis.__main__ import main as analysis
from speechbrain_ext.analysis.runs import ModelSpec
from tests.conftest import RECIPE_OVERRIDES, REPO


def saved_layer(model_cache: Path, layer: int, ids: list) -> np.ndarray:
    """One layer's embeddings read straight from the cache's files (index.json, L<layer>/<shard>.npy)."""
    rows = {}
    for shard in json.loads((model_cache / "index.json").read_text())["shards"]:
        data = np.load(model_cache / f"L{layer}" / f"{shard['name']}.npy")
        rows.update(zip(shard["ids"], data))
    return np.stack([rows[i] for i in ids])


def read_manifest(path: Path, data_folder) -> dict:
    return {
        k: {**v, "wav": v["wav"].replace("{data_root}", str(data_folder))}
        for k, v in json.loads(path.read_text()).items()
    }


def test_every_verb_has_help(capsys):
    proc = subprocess.run(
        [sys.executable, "-m", "speechbrain_ext.analysis", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0 and all(verb in proc.stdout for verb in VERBS)
    for verb in VERBS:
        with pytest.raises(SystemExit) as exit_info:
            analysis([verb, "--help"])
        assert exit_info.value.code == 0
        assert f"speechbrain_ext.analysis {verb}" in capsys.readouterr().out


def test_embed_caches_per_model_and_layer(tiny_models, tmp_path, monkeypatch):
    import speechbrain_ext.analysis.embed as embed

    rng = np.random.default_rng(0)
    manifest = {}
    for i in range(5):
        wav = tmp_path / f"u{i}.wav"
        soundfile.write(wav, rng.normal(0, 0.1, 16000 + 4000 * i), 16000)
        manifest[f"u{i}"] = {"wav": str(wav), "duration": 1 + 0.25 * i, "emo": "ang" if i % 2 else "sad"}
    (tmp_path / "m.json").write_text(json.dumps(dict(list(manifest.items())[:4])))
    (tmp_path / "all.json").write_text(json.dumps(manifest))
    args = ["embed", "--model", tiny_models["wav2vec2"], "--cache", str(tmp_path / "cache"), "--noprogressbar"]
    analysis([*args, "--manifest", str(tmp_path / "m.json")])
    folder = tmp_path / "cache" / ModelSpec(tiny_models["wav2vec2"]).key
    layers = (folder / "embed_layers.csv").read_text().splitlines()
    assert layers[0] == "layer,mean_norm,class_separation" and len(layers) == 1 + 4  # CNN projection + 3 layers
    # a direct forward of one file gives the cached last layer
    from speechbrain_ext.data.audio import load_audio
    from speechbrain_ext.nn.encoders import SSLEncoder

    encoder = SSLEncoder(tiny_models["wav2vec2"], str(tmp_path / "hf"), freeze=True).eval()
    with embed.torch.no_grad():
        frames, _ = encoder(load_audio(manifest["u2"]["wav"])[None])
    np.testing.assert_allclose(saved_layer(folder, 3, ["u2"])[0], frames[0].mean(0).numpy(), atol=1e-5)
    encoded = []
    original = embed.pooled_states
    monkeypatch.setattr(embed, "pooled_states", lambda enc, wav: encoded.append(1) or original(enc, wav))
    analysis([*args, "--manifest", str(tmp_path / "all.json")])
    assert len(encoded) == 1  # only the new file; the four others come from the cache
    assert (
        json.loads((folder / "embed.json").read_text())["n"] == 5 and (folder / "embed_layers.png").stat().st_size > 0
    )


def test_probe_matches_scikit_learn_and_never_sees_test_speakers(registry_runs, tmp_path, monkeypatch):
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    run = registry_runs["recipes/RAVDESS/hparams/baseline.yaml"]["folder"]  # two epochs on six actors
    data_folder = next(
        line.split(": ", 1)[1]
        for line in (run / "hyperparams.yaml").read_text().splitlines()
        if line.startswith("data_folder:")
    )
    train = {
        **read_manifest(run / "prep" / "train.json", data_folder),
        **read_manifest(run / "prep" / "valid.json", data_folder),
    }
    test = read_manifest(run / "prep" / "test.json", data_folder)
    seen = []
    fit = GridSearchCV.fit
    monkeypatch.setattr(
        GridSearchCV, "fit", lambda self, x, y=None, **kw: seen.append(np.asarray(x)) or fit(self, x, y, **kw)
    )
    grid = [0.001, 0.01, 0.1, 1.0]
    out = tmp_path / "probe"
    # RAVDESS manifests carry no sessions: its validation actors are other speakers, fit to train on
    analysis(
        [
            "probe",
            "--folds",
            str(run),
            "--model",
            str(run),
            "--train_splits",
            "train,valid",
            "--out",
            str(out),
            "--C",
            *map(str, grid),
            "--noprogressbar",
        ]
    )
    seen_calls = list(seen)
    rows = list(csv.DictReader((out / "probe.csv").open()))
    chosen_c = [float(r["C"]) for r in csv.DictReader((out / "probe_folds.csv").open())]
    assert [int(r["layer"]) for r in rows] == [0, 1, 2, 3]

    cache = out / "embeddings_cache" / ModelSpec(str(run)).key
    train_ids, test_ids = list(train), list(test)
    labels = sorted({e["emo"] for e in [*train.values(), *test.values()]})
    y_train = np.array([labels.index(train[i]["emo"]) for i in train_ids])
    y_test = np.array([labels.index(test[i]["emo"]) for i in test_ids])
    groups = np.array([train[i]["speaker"] for i in train_ids])
    assert not set(groups) & {test[i]["speaker"] for i in test_ids}
    for row, x_seen, c in zip(rows, seen_calls, chosen_c):
        layer = int(row["layer"])
        x_train, x_test = saved_layer(cache, layer, train_ids), saved_layer(cache, layer, test_ids)
        # the grid search was given exactly the training rows: no test utterance among them
        np.testing.assert_array_equal(x_seen, x_train)
        assert not {r.tobytes() for r in x_test} & {r.tobytes() for r in x_seen}
        if len(set(groups)) >= 5:  # enough training actors: folds of whole actors
            folds = list(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(x_train, y_train, groups))
        else:  # the registry corpus's 4 training actors: too few for 5 grouped folds, stratified folds
            folds = list(
                StratifiedKFold(n_splits=min(5, np.bincount(y_train).min()), shuffle=True, random_state=0).split(
                    x_train, y_train
                )
            )
        # the paper's SVM with a linear kernel, as libsvm computes it
        search = GridSearchCV(
            make_pipeline(StandardScaler(), SVC(kernel="linear")),
            {"svc__C": grid},
            cv=folds,
            scoring="balanced_accuracy",
        )
        search.fit(x_train, y_train)
        assert c == search.best_params_["svc__C"]
        assert float(row["UAR"]) == pytest.approx(balanced_accuracy_score(y_test, search.predict(x_test)), abs=1e-6)
    best = max(float(r["UAR"]) for r in rows)
    print(
        f"\nprobe of the trained tiny run: UAR per layer {[round(float(r['UAR']), 3) for r in rows]} (chance {1 / len(labels):.3f})"
    )
    assert best > 2.5 / len(labels)  # a fine-tuned layer carries the emotion of unseen actors
    assert json.loads((out / "probe.json").read_text())["chance_UAR"] == pytest.approx(1 / len(labels))
    assert (out / "probe_layers.png").stat().st_size > 0


def test_probe_refuses_a_split_sharing_speakers():
    from speechbrain_ext.analysis.svm_probe import probe_fold

    x, y = np.zeros((8, 2)), np.array([0, 1] * 4)
    speakers = np.array(["a", "b"] * 4)
    with pytest.raises(ValueError, match="both the training and the test"):
        probe_fold(x, y, speakers, np.arange(6), np.arange(6, 8))


def test_probe_is_a_linear_kernel_svm_where_features_outnumber_utterances():
    """More features than utterances (as 6373 functionals): the probe gives SVC(kernel="linear") with the default grid and the same CV splits, in parallel too."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from speechbrain_ext.analysis.svm_probe import probe_fold

    rng = np.random.default_rng(0)
    n_classes, n_speakers, dim = 4, 12, 400
    speakers = np.repeat(np.arange(n_speakers), 8)
    y = np.tile(np.arange(n_classes), 2 * n_speakers)
    # weak class means, speaker offsets and columns on scales far apart, stored as float32 like the caches
    x = (
        0.12 * rng.normal(size=(n_classes, dim))[y]
        + 0.5 * rng.normal(size=(n_speakers, dim))[speakers]
        + rng.normal(size=(len(y), dim))
    )
    x = (x * 10.0 ** rng.uniform(-3, 3, dim)).astype(np.float32)
    train, test = np.flatnonzero(speakers < 10), np.flatnonzero(speakers >= 10)
    x_train, y_train = x[train], y[train]
    folds = list(
        StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(x_train, y_train, speakers[train])
    )
    grid = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]  # the probe's default grid
    search = GridSearchCV(
        make_pipeline(StandardScaler(), SVC(kernel="linear")), {"svc__C": grid}, cv=folds, scoring="balanced_accuracy"
    ).fit(x_train, y_train)
    predicted = search.predict(x[test])
    expected = {
        "UAR": balanced_accuracy_score(y[test], predicted),
        "WA": accuracy_score(y[test], predicted),
        "C": search.best_params_["svc__C"],
        "cv_UAR": search.best_score_,
        "n_train": 80,
        "n_test": 16,
    }
    assert (
        len(set(np.round(search.cv_results_["mean_test_score"], 9))) > 1
    )  # C matters here: the search has something to pick
    for n_jobs in (1, 2):
        assert probe_fold(x, y, speakers, train, test, n_jobs=n_jobs) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "key, train_value, test_value",
    [("session", 3, 3), ("dialog", "Ses02F_script01_1", "Ses02F_script01_1")],
)
def test_probe_refuses_training_rows_sharing_a_session_or_dialog(tmp_path, key, train_value, test_value):
    """Different speakers, but a training row of the test row's session (or dialog): refused, the row and the value named."""
    from speechbrain_ext.analysis.probe import load_folds

    fold = tmp_path / "fold"
    fold.mkdir()
    train = {
        "u1": {"wav": "/x/u1.wav", "speaker": "A", "emo": "ang", key: "other"},
        "u2": {"wav": "/x/u2.wav", "speaker": "B", "emo": "sad", key: train_value},
    }
    test = {"u3": {"wav": "/x/u3.wav", "speaker": "C", "emo": "ang", key: test_value}}
    (fold / "train.json").write_text(json.dumps(train))
    (fold / "test.json").write_text(json.dumps(test))
    with pytest.raises(ValueError, match=f"train.json: training row u2 shares {key} {test_value} with test row u3 "):
        load_folds(fold)
    train["u2"][key] = "elsewhere"
    (fold / "train.json").write_text(json.dumps(train))
    assert set(load_folds(fold)[0].train) == {"u1", "u2"}


def test_probe_trains_on_train_only_by_default_and_refuses_loso_valid(registry_corpora, tmp_path):
    """IEMOCAP loso: train (the other four sessions) passes; valid, the test speaker's partner in session 1, is refused by the CLI."""
    from data_prep.iemocap import prepare_iemocap
    from speechbrain_ext.analysis.probe import load_folds

    corpus = registry_corpora["IEMOCAP"]
    prep = tmp_path / "loso1"
    prepare_iemocap(corpus, prep, protocol="loso", fold=1, allow_subset=True)
    train, valid, test = (json.loads((prep / f"{s}.json").read_text()) for s in ("train", "valid", "test"))
    [fold] = load_folds(prep, str(corpus))
    assert set(fold.train) == set(train) and set(fold.test) == set(test)
    assert not {u[:5] for u in fold.train} & {
        u[:5] for u in fold.test
    }  # sessions from the ids: Ses01 is the test's alone
    out = tmp_path / "probe"
    with pytest.raises(SystemExit) as refused:
        analysis(
            [
                "probe",
                "--folds",
                str(prep),
                "--data_folder",
                str(corpus),
                "--train_splits",
                "train,valid",
                "--model",
                "unused",
                "--out",
                str(out),
            ]
        )
    message = str(refused.value.code)
    shared = re.search(
        r"valid\.json: training row (\S+) shares session 1 with test row (\S+) \((\d+) training row", message
    )
    assert shared, message
    assert shared.group(1) in valid and shared.group(2) in test and int(shared.group(3)) == len(valid)
    assert not out.exists()  # refused before anything was encoded


def write_tiny_ctc(base: str, folder: Path) -> str:
    """A CTC model on the tiny wav2vec2 (as an ASR-fine-tuned checkpoint is: the encoder plus an lm_head)."""
    import transformers

    config = transformers.Wav2Vec2Config.from_pretrained(base)
    config.vocab_size = 32
    config.architectures = ["Wav2Vec2ForCTC"]
    model = transformers.Wav2Vec2ForCTC(config)
    model.wav2vec2.load_state_dict(transformers.Wav2Vec2Model.from_pretrained(base).state_dict())
    model.save_pretrained(folder)
    shutil.copy(Path(base) / "preprocessor_config.json", folder)
    return str(folder)


def test_asr_ser_then_compare_with_direct_ser(registry_runs, registry_corpora, tiny_models, tmp_path):
    """Table I G-4 and Tables II-III in small: SER fine-tuned from a CTC checkpoint, compared with direct SER on the same test files."""
    ser = registry_runs["recipes/RAVDESS/hparams/baseline.yaml"]["folder"]
    ctc = write_tiny_ctc(tiny_models["wav2vec2"], tmp_path / "tiny_ctc")
    results = tmp_path / "asr_ser"
    overrides = [o for o in RECIPE_OVERRIDES if o != "--noprogressbar"] + ["--number_of_epochs=1", "--noprogressbar"]
    analysis(
        [
            "asr-ser",
            str(REPO / "recipes/RAVDESS/hparams/baseline.yaml"),
            "--data_folder",
            str(registry_corpora["RAVDESS"]),
            "--results",
            str(results),
        ]
        + ["--asr", f"tinyASR={ctc}", "--ser", str(ser), "--", *overrides]
    )
    table = list(csv.DictReader((results / "asr_ser.csv").open()))
    assert [r["system"] for r in table] == ["SER", "tinyASR->SER"]
    (asr_run,) = [p.parent for p in (results / "tinyASR").rglob("test_report.json") if "knn" not in p.parts]
    assert f"ssl_hub: {ctc}" in (asr_run / "hyperparams.yaml").read_text()
    for row, run in zip(table, (ser, asr_run)):
        assert float(row["UAR"]) == pytest.approx(json.loads((run / "test_report.json").read_text())["UAR"], abs=1e-6)
    assert (results / "asr_ser.png").stat().st_size > 0 and "tinyASR->SER" in (results / "asr_ser.md").read_text()

    out = tmp_path / "compare"
    analysis(
        ["compare", str(ser), str(results / "tinyASR"), "--out", str(out), "--threshold", "0.5", "--noprogressbar"]
    )
    summary = json.loads((out / "compare.json").read_text())
    pred_a = {r["id"]: r["predicted"] for r in csv.DictReader((ser / "test_predictions.csv").open())}
    pred_b = {r["id"]: r["predicted"] for r in csv.DictReader((asr_run / "test_predictions.csv").open())}
    ids = sorted(pred_a)
    n = len(ids)
    agree = sum(pred_a[i] == pred_b[i] for i in ids)
    labels = set(pred_a.values()) | set(pred_b.values())
    expected = sum((sum(pred_a[i] == c for i in ids) / n) * (sum(pred_b[i] == c for i in ids) / n) for c in labels)
    kappa = (agree / n - expected) / (1 - expected)
    assert summary["n"] == n and summary["mismatch_percent"] == pytest.approx(100 * (n - agree) / n, abs=1e-4)
    assert summary["kappa"] == pytest.approx(kappa, abs=1e-6)

    rows = {r["id"]: r for r in csv.DictReader((out / "compare.csv").open())}
    cache = out / "embeddings_cache"
    emb_a = saved_layer(cache / ModelSpec(str(ser)).key, -1 % 4, ids)
    emb_b = saved_layer(cache / ModelSpec(str(asr_run)).key, -1 % 4, ids)
    distances = np.array([cosine(a, b) for a, b in zip(emb_a, emb_b)])
    np.testing.assert_allclose([float(rows[i]["cosine_distance"]) for i in ids], distances, atol=2e-6)
    inside = distances <= 0.5
    assert summary["cosine"]["data_percent"] == pytest.approx(100 * inside.mean(), abs=1e-3)
    if inside.any():
        match = np.array([pred_a[i] == pred_b[i] for i in ids])
        assert summary["cosine"]["match_percent"] == pytest.approx(100 * match[inside].mean(), abs=1e-3)
    assert (out / "compare_cosine.png").stat().st_size > 0


def test_probe_feature_baselines(registry_corpora, tmp_path):
    """Table I's handcrafted rows: ComParE functionals and BoAW through the same SVM probe, on a small fold."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from data_prep.ravdess import prepare_ravdess
    from speechbrain_ext.analysis.features import FeatureCache

    corpus = registry_corpora["RAVDESS"]
    prepare_ravdess(corpus, tmp_path / "prep", allow_subset=True)
    fold = tmp_path / "fold"
    fold.mkdir()
    for split, per_class in (("train", 3), ("test", 2)):
        entries, kept = json.loads((tmp_path / "prep" / f"{split}.json").read_text()), {}
        for utt, entry in entries.items():
            if sum(e["emo"] == entry["emo"] for e in kept.values()) < per_class:
                kept[utt] = entry
        (fold / f"{split}.json").write_text(json.dumps(kept))
    out = tmp_path / "probe"
    analysis(
        ["probe", "--folds", str(fold), "--data_folder", str(corpus), "--train_splits", "train", "--out", str(out)]
        + [
            "--baselines",
            "compare_functionals",
            "boaw_compare_lld",
            "--codebook_size",
            "8",
            "--C",
            "0.01",
            "1",
            "--noprogressbar",
        ]
    )
    rows = {r["feature"]: r for r in csv.DictReader((out / "probe.csv").open())}
    assert set(rows) == {"compare_functionals", "boaw_compare_lld"} and all(r["layer"] == "" for r in rows.values())
    train, test = (read_manifest(fold / f"{s}.json", corpus) for s in ("train", "test"))
    labels = sorted({e["emo"] for e in train.values()})
    y_train, y_test = (np.array([labels.index(e["emo"]) for e in m.values()]) for m in (train, test))
    functionals = FeatureCache(out / "embeddings_cache" / "opensmile", "functionals")
    x_train, x_test = (functionals.get([e["wav"] for e in m.values()]) for m in (train, test))
    assert x_train.shape[1] == 6373
    folds = list(
        StratifiedKFold(n_splits=min(5, np.bincount(y_train).min()), shuffle=True, random_state=0).split(
            x_train, y_train
        )
    )
    search = GridSearchCV(
        make_pipeline(StandardScaler(), SVC(kernel="linear")),
        {"svc__C": [0.01, 1.0]},
        cv=folds,
        scoring="balanced_accuracy",
    )
    search.fit(x_train, y_train)
    assert float(rows["compare_functionals"]["UAR"]) == pytest.approx(
        balanced_accuracy_score(y_test, search.predict(x_test)), abs=1e-6
    )
    assert (out / "probe_layers.png").stat().st_size > 0
