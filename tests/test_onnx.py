"""ONNX export (``hub export --onnx``) and its onnxruntime loader: the PyTorch interface's answer, to 1e-4, on files of three lengths."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import torch
from hyperpyyaml import resolve_references

from speechbrain_ext.data.audio import load_audio
from speechbrain_ext.nn.models import SegmentModel, TextModel, UtteranceModel
from speechbrain_ext.serving.export import cli
from speechbrain_ext.serving.inference import EmotionClassifier
from speechbrain_ext.serving.onnx_model import OnnxEmotionClassifier, export_onnx

REPO = Path(__file__).resolve().parents[1]
# Two trained registry runs nothing else in the suite exports: an utterance model and a segment model (80/40 frames, most confident segment).
RUNS = {"baseline": "recipes/RAVDESS/hparams/baseline.yaml", "seg": "recipes/RAVDESS/hparams/seg.yaml"}
SECONDS = (
    1.0,
    2.3,
    4.1,
)  # 49, 114 and 204 frames: one short segment; one window and the end-aligned tail; four windows and the tail


@pytest.fixture(scope="module")
def exported(registry_runs, tmp_path_factory):
    """Each run exported once, with --onnx, through the command line's code."""
    out = {}
    for name, hparams in RUNS.items():
        run = registry_runs[hparams]
        assert run["proc"].returncode == 0, run["proc"].stderr[-3000:]
        out[name] = tmp_path_factory.mktemp("onnx") / name
        cli.main(
            ["export", "--train-hparams", str(run["folder"] / "hyperparams.yaml"), "--out", str(out[name]), "--onnx"]
        )
    return out


@pytest.fixture(scope="module")
def wav_files(registry_corpora, tmp_path_factory):
    """Speech of the synthetic corpus cut to three lengths; the middle one at 22.05 kHz stereo (both loaders resample it)."""
    speech = torch.cat(
        [load_audio(p) for p in sorted(Path(registry_corpora["RAVDESS"]).glob("Actor_*/*.wav"))[:4]]
    ).numpy()
    assert len(speech) >= 16000 * max(SECONDS)
    folder, paths = tmp_path_factory.mktemp("wavs"), []
    for seconds in SECONDS:
        path = folder / f"{seconds:g}s.wav"
        clip = speech[: int(seconds * 16000)]
        if seconds == 2.3:
            import torchaudio.functional

            clip = torchaudio.functional.resample(torch.from_numpy(clip), 16000, 22050).numpy()
            soundfile.write(path, np.stack([clip, 0.5 * clip], axis=1), 22050, subtype="FLOAT")
        else:
            soundfile.write(path, clip, 16000, subtype="FLOAT")
        paths.append(str(path))
    return paths


def test_export_writes_a_dynamic_graph_and_describes_it(exported):
    folder = exported["baseline"]
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    (wav,) = graph.graph.input
    assert [d.dim_value or d.dim_param for d in wav.type.tensor_type.shape.dim] == [
        1,
        "samples",
    ]  # one file, any length
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["model_class"] == "UtteranceModel" and "dynamo=False" in meta["exporter"]
    assert (
        "## ONNX" in (folder / "README.md").read_text()
        and "OnnxEmotionClassifier" in (folder / "README.md").read_text()
    )
    seg = {
        p.key: p.value for p in onnx.load(str(exported["seg"] / "model.onnx"), load_external_data=False).metadata_props
    }
    assert seg["model_class"] == "SegmentModel"


@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_answers_as_pytorch_on_three_lengths(exported, wav_files, name, tmp_path):
    folder = exported[name]
    # the loader in a fresh process: neither speechbrain nor transformers is imported to classify
    script = f"""
import json, sys
from speechbrain_ext.serving.onnx_model import OnnxEmotionClassifier
model = OnnxEmotionClassifier({str(folder)!r}, intra_op_num_threads=1)
out = []
for path in {wav_files!r}:
    out_prob, score, index, text_lab = model.classify_file(path)
    out.append({{"out_prob": out_prob.tolist(), "score": score.tolist(), "index": index.tolist(), "text_lab": text_lab}})
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"speechbrain", "transformers"}})
print("RESULT" + json.dumps({{"files": out, "heavy": heavy}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["heavy"] == []
    classifier = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    assert isinstance(classifier.model, SegmentModel) == (name == "seg")
    if name == "seg":  # the three lengths reach the three cases of the segment decision
        frames = classifier.model.encoder.frame_lengths(torch.tensor([len(load_audio(p)) for p in wav_files]))
        assert classifier.model.segments.n_segments(frames).tolist() == [1, 2, 5]
    for path, got in zip(wav_files, result["files"]):
        out_prob, score, index, text_lab = classifier.classify_file(path)
        torch.testing.assert_close(torch.tensor(got["out_prob"]), out_prob, atol=1e-4, rtol=0)
        assert got["text_lab"] == text_lab and got["index"] == index.tolist()
        assert got["score"] == pytest.approx(score.tolist(), abs=1e-4)
    # a padded batch is classified file by file (exact), as the one-file graph allows
    onnx_model = OnnxEmotionClassifier(folder)
    signals = [load_audio(p) for p in wav_files]
    wavs = torch.nn.utils.rnn.pad_sequence(signals, batch_first=True)
    batch = onnx_model.classify_batch(wavs, torch.tensor([len(s) / wavs.shape[1] for s in signals]))
    torch.testing.assert_close(
        batch[0], torch.cat([torch.tensor(f["out_prob"]) for f in result["files"]]), atol=1e-5, rtol=0
    )


def _regressor_run(tiny_models, folder: Path) -> Path:
    """A Hume-Prosody (intensity regressor) run's hyperparams.yaml, resolved as a recipe run writes it (nothing trained)."""
    overrides = {
        "data_folder": str(folder),
        "output_folder": str(folder / "run"),
        "ssl_hub": tiny_models["wav2vec2"],
        "encoder_dim": 64,
    }
    with open(REPO / "recipes/Hume-Prosody/hparams/audio.yaml") as handle:
        text = resolve_references(handle, overrides).getvalue()
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "hyperparams.yaml").write_text(text)
    return folder / "run" / "hyperparams.yaml"


def test_models_that_cannot_be_exported_are_refused_before_writing(exported, tiny_models, tmp_path, capsys):
    for argv, message in (
        (
            ["--train-hparams", str(_regressor_run(tiny_models, tmp_path / "hume"))],
            "with a Sigmoid output is not a classifier",
        ),
        (["--fusion", str(tmp_path / "late_fusion")], "a FusedModel cannot be exported to ONNX"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(["export", *argv, "--out", str(tmp_path / "out"), "--onnx"])
        assert stop.value.code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "out").exists()  # refused before the export wrote anything

    class Words(torch.nn.Module):
        def forward(self, texts):
            return torch.ones(len(texts), 2), torch.ones(len(texts))

    from speechbrain_ext.nn.bayesian import BayesianLinear

    sampling = EmotionClassifier.from_hparams(source=str(exported["baseline"]), savedir=str(tmp_path / "c")).model
    sampling.head = BayesianLinear(sampling.head.w.in_features, sampling.head.w.out_features, mean_weights=False)
    for model, message in (
        (
            TextModel(Words(), torch.nn.Linear(2, 3), torch.nn.LogSoftmax(dim=-1)),
            "a TextModel cannot be exported to ONNX",
        ),
        (sampling, "samples its weights at every call"),
    ):
        with pytest.raises(ValueError, match=message):
            export_onnx(model, tmp_path / "never.onnx")
        assert not (tmp_path / "never.onnx").exists()
    assert isinstance(sampling, UtteranceModel)


def test_loader_refuses_files_the_interface_encodes_in_chunks(exported, tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(31 * 16000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="longer than 30 s.*chunk by chunk"):
        OnnxEmotionClassifier(exported["baseline"]).classify_file(path)
    with pytest.raises(FileNotFoundError, match="--onnx"):
        OnnxEmotionClassifier(tmp_path)


def test_onnx_metadata_carries_the_calibration_and_gives_the_same_sets(
    exported, registry_runs, registry_corpora, tmp_path
):
    """The graph's metadata holds the run entry's temperature and scores; onnxruntime gives the PyTorch interface's sets."""
    from tests.test_calibration_inference import members, saved_sets

    folder = exported["baseline"]
    meta = {p.key: p.value for p in onnx.load(str(folder / "model.onnx"), load_external_data=False).metadata_props}
    run = registry_runs[RUNS["baseline"]]["folder"]
    saved = json.loads((run / "calibration.json").read_text())["entries"]["run"]
    assert float(meta["temperature"]) == saved["temperature"]
    assert json.loads(meta["calibration"])["entries"]["run"]["scores"] == saved["scores"]
    graph = OnnxEmotionClassifier(folder, intra_op_num_threads=1)
    torch_model = EmotionClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "c"))
    rows, paths = saved_sets(run, registry_corpora["RAVDESS"], n=8)
    same = 0
    for row, path in zip(rows, paths):
        *_, sets = graph.classify_file(path, prediction_set=True)
        same += sets[0].labels == torch_model.classify_file(path, prediction_set=True)[4][0].labels == members(row)
        *_, text_lab, sets = graph.classify_file(path, abstain=0.5)
        assert (text_lab[0] is None) == (len(sets[0].labels) != 1)
    assert same >= len(rows) - 1  # a score within 1e-4 of qhat may fall either side (the graph agrees to 1e-4)
