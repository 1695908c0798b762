"""Exported folders load with SpeechBrain alone: ``foreign_class`` in a process where ``speechbrain_ext`` cannot be
imported, offline, gives the package's ``from_hparams`` answer (1e-5) for five model kinds."""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.nn.knn import KNNInterpolator
from speechbrain_ext.serving.export.export import export_fusion, export_model
from speechbrain_ext.serving.export.publish import publish
from speechbrain_ext.serving.export.standalone import interface_source
from speechbrain_ext.serving.inference import EmotionClassifier, EmotionRegressor
from speechbrain_ext.utils.fileio import atomic_write_json
from tests.model_folders import REPO, random_model_folder

SELECTED = "selection_metric: UAR\nselection_mode: max\nUAR: 0.5\n"  # what best_checkpoint reads


@pytest.fixture(scope="module")
def folders(tiny_models, tmp_path_factory):
    """Utterance, segment, regressor, Bayesian head with a kNN datastore, late fusion of a Whisper-text and an audio run."""
    root = tmp_path_factory.mktemp("standalone")
    out = {
        "utterance": random_model_folder("recipes/RAVDESS/hparams/baseline.yaml", tiny_models, root / "utt")[0],
        "segment": random_model_folder("recipes/RAVDESS/hparams/seg.yaml", tiny_models, root / "seg")[0],
        "regressor": random_model_folder("recipes/Hume-Prosody/hparams/audio.yaml", tiny_models, root / "reg")[0],
    }
    random_model_folder("recipes/RAVDESS/hparams/bayes.yaml", tiny_models, root / "bayes")
    store = KNNInterpolator(3, k=3, alpha=0.5)
    generator = torch.Generator().manual_seed(1)
    store.add(torch.randn(12, 64, generator=generator), torch.arange(12) % 3)
    torch.save(store.state_dict(), root / "bayes" / "run" / "knn_datastore.pt")  # what a run's kNN stage writes
    run = root / "bayes" / "run"
    out["bayes_knn"] = export_model(run / "hyperparams.yaml", root / "bayes_knn", run / "save" / "CKPT+random")
    text_extra = {"text_hub": tiny_models["camembert"], "whisper_hub": tiny_models["whisper"], "text_dim": 64}
    random_model_folder("recipes/HealthCall30/hparams/text.yaml", tiny_models, root / "text", **text_extra)
    random_model_folder("recipes/HealthCall30/hparams/audio.yaml", tiny_models, root / "audio", ssl_layer=2)
    for name in ("text", "audio"):
        (root / name / "run" / "save" / "CKPT+random" / "CKPT.yaml").write_text(SELECTED)
    runs = [str(root / name / "run") for name in ("text", "audio")]
    atomic_write_json(root / "late" / "fusion.json", {"method": "late_fusion", "runs": runs, "weights": [1.0, 0.9]})
    out["late"] = export_fusion(root / "late", root / "late_model")
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """A 16 kHz mono file and a 44.1 kHz stereo one (both loaders read and resample them)."""
    folder, rng = tmp_path_factory.mktemp("wavs"), np.random.default_rng(0)
    soundfile.write(folder / "a.wav", 0.1 * rng.standard_normal(32000), 16000)
    soundfile.write(folder / "b.wav", 0.1 * rng.standard_normal((57330, 2)), 44100)
    return [str(folder / "a.wav"), str(folder / "b.wav")]


def answers(load, kind: str, wavs: list[str]) -> dict:
    """What the script below prints for one folder, from ``load(class name)``: the same code for both loaders."""
    model = load("EmotionRegressor" if kind == "regressor" else "EmotionClassifier")
    if kind == "regressor":
        return {"outputs": [model.predict_file(w) for w in wavs]}
    out = {"probs": [model.classify_file(w)[0].exp()[0].tolist() for w in wavs]}
    if kind == "late":
        out["transcript"] = model.last_transcript  # of the last file, by the Whisper packed in the folder
    if kind == "bayes_knn":
        torch.manual_seed(0)  # the same weight draws in both processes
        summary = model.uncertainty_file(wavs[0], n_samples=16)
        out["uncertainty"] = {k: v.tolist() for k, v in summary.items() if k != "labels"}
        out["knn"] = model.hparams.knn.interpolator.alpha
        del model.hparams.knn  # the model's own answer, without the kNN interpolation
        out["without_knn"] = model.classify_file(wavs[0])[0].exp()[0].tolist()
    return out


SCRIPT = """
import importlib.abc, json, sys
class NoPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "speechbrain_ext":
            raise ImportError(name + ": not installed here")
sys.meta_path.insert(0, NoPackage())
sys.path = [p for p in sys.path if p not in ("", ".", {repo!r})]
try:
    import speechbrain_ext
except ImportError:
    pass
else:
    raise SystemExit("speechbrain_ext was importable")
import torch
from speechbrain.inference.interfaces import foreign_class
{answers}
out = {{}}
for kind, folder in {folders!r}.items():
    load = lambda name: foreign_class(source=folder, pymodule_file="custom_interface.py", classname=name,
                                      savedir=folder + "_foreign")
    out[kind] = answers(load, kind, {wavs!r})
out["modules"] = sorted(m for m in sys.modules if m.startswith("speechbrain_ext"))
print("RESULT" + json.dumps(out))
"""


def test_foreign_class_without_the_package_matches_from_hparams(folders, wavs, tmp_path):
    import inspect

    names = {kind: str(folder) for kind, folder in folders.items()}
    script = SCRIPT.format(repo=str(REPO), answers=inspect.getsource(answers), folders=names, wavs=wavs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # SpeechBrain alone in a fresh process, while this one answers with the package (two cores: side by side)
    log = open(tmp_path / "stderr.txt", "w")  # a file, not a pipe: the child never waits on this process
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp_path, env=env
    )
    interfaces = {"EmotionClassifier": EmotionClassifier, "EmotionRegressor": EmotionRegressor}
    packaged = {}
    for kind, folder in folders.items():

        def load(name, folder=folder, kind=kind):
            return interfaces[name].from_hparams(source=str(folder), savedir=str(tmp_path / kind))

        packaged[kind] = answers(load, kind, wavs)
    stdout, _ = proc.communicate(timeout=600)
    log.close()
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-4000:]
    alone = json.loads(stdout.split("RESULT", 1)[1])
    assert alone.pop("modules") == []
    for kind, package in packaged.items():
        if kind == "regressor":
            for got, expected in zip(alone[kind]["outputs"], package["outputs"]):
                assert got.keys() == expected.keys()
                np.testing.assert_allclose(list(got.values()), list(expected.values()), atol=1e-5, rtol=0)
            continue
        np.testing.assert_allclose(alone[kind]["probs"], package["probs"], atol=1e-5, rtol=0)
        if kind == "bayes_knn":
            for key, value in package["uncertainty"].items():
                np.testing.assert_allclose(alone[kind]["uncertainty"][key], value, atol=1e-5, rtol=0)
            assert alone[kind]["knn"] == package["knn"] == 0.5
            np.testing.assert_allclose(alone[kind]["without_knn"], package["without_knn"], atol=1e-5, rtol=0)
            # the interpolation was applied: p = alpha p_knn + (1 - alpha) p_model, p_knn a share of k = 3 votes
            p_knn = (np.array(package["probs"][0]) - 0.5 * np.array(package["without_knn"])) / 0.5
            np.testing.assert_allclose(p_knn * 3, np.round(p_knn * 3), atol=1e-4)
            assert np.abs(p_knn - np.array(package["without_knn"])).max() > 1e-3
    # the late fusion's text branch read the same Whisper transcript in both processes
    assert (
        isinstance(alone["late"]["transcript"], str) and alone["late"]["transcript"] == packaged["late"]["transcript"]
    )


def test_folders_name_only_speechbrain_and_their_own_file(folders):
    for kind, folder in folders.items():
        yaml_text = (folder / "hyperparams.yaml").read_text()
        assert "speechbrain_ext" not in yaml_text, kind
        source = (folder / "custom_interface.py").read_text()
        tree = ast.parse(source)
        imported = {
            (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert "speechbrain_ext" not in imported, kind
        defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        tags = {tag.split(".", 1)[1] for tag in __import__("re").findall(r"!new:(custom_interface\.\w+)", yaml_text)}
        assert tags and tags <= defined, kind
        assert {"EmotionClassifier", "EmotionRegressor"} <= defined
        assert "GENERATED by `hub export`" in source and "Do not edit it by hand" in " ".join(source.split())
    assert {"KNNDatastore", "BayesianLinear"} <= set(ast.literal_eval(_origins(folders["bayes_knn"])))
    assert {"Transcriber", "TranscriptEncoder", "FusedModel"} <= set(ast.literal_eval(_origins(folders["late"])))
    card = (folders["late"] / "README.md").read_text()
    assert card.index("foreign_class(") < card.index("from_hparams(")  # SpeechBrain alone comes first
    files = publish(folders["late"], "org/late", dry_run=True)  # the hub checks read the retagged YAML
    assert {"custom_interface.py", "whisper.ckpt", "text_tokenizer_0.ckpt"} <= set(files)


def _origins(folder) -> str:
    tree = ast.parse((folder / "custom_interface.py").read_text())
    return next(
        ast.unparse(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "PACKAGE_ORIGINS"
    )


def test_export_refuses_heavy_imports_and_name_clashes():
    """A module of the closure that imports pandas at module level, or two that define one name differently."""
    with pytest.raises(ValueError, match=r"imports pandas at module level"):
        interface_source({}, roots=("speechbrain_ext.evaluation.reports",))
    with pytest.raises(ValueError, match=r"binds 'main', which .* binds differently"):
        interface_source({}, roots=("speechbrain_ext.data.transcribe", "speechbrain_ext.testing.tiny_models"))
