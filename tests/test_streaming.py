"""Streaming: one decision per hop over the last window, as ``classify_file`` decides that window, in bounded memory."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ext.serving.inference import EmotionClassifier
from speechbrain_ext.serving.streaming import Pacer, WindowStream
from tests.model_folders import random_model_folder

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="module")
def segment_model(tiny_models, tmp_path_factory):
    """The segment family (triplet_seg's model node) on the tiny wav2vec2, random weights, exported (no training)."""
    root = tmp_path_factory.mktemp("stream_model")
    folder, _ = random_model_folder("recipes/RAVDESS/hparams/triplet_seg.yaml", tiny_models, root / "seg")
    return folder, EmotionClassifier.from_hparams(source=str(folder), savedir=str(root / "cache"))


def voiced(seconds: float, seed: int = 0) -> np.ndarray:
    """A voice-like signal whose pitch and loudness wander, so that windows differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 140 * (1 + 0.3 * np.sin(2 * np.pi * 0.4 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    envelope = 0.3 + 0.7 * np.sin(2 * np.pi * 0.7 * t) ** 2
    signal = envelope * sum(np.sin(h * phase) / h for h in range(1, 6)) + 0.05 * rng.standard_normal(len(t))
    return (0.2 * signal).astype(np.float32)


def random_chunks(signal: np.ndarray, seed: int, largest: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    cuts = [0]
    while cuts[-1] < len(signal):
        cuts.append(min(len(signal), cuts[-1] + int(rng.integers(1, largest))))
    return [signal[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def file_answer(model, samples: np.ndarray, path: Path):
    soundfile.write(path, samples, SR, subtype="FLOAT")  # float32 on disk: the window's very samples
    out_prob, _, _, text_lab = model.classify_file(path)
    return text_lab[0], out_prob[0].exp()


@pytest.mark.parametrize("seed,largest", [(0, 3000), (1, 40000)])  # small chunks; chunks up to 1.25 windows
def test_each_decision_is_classify_file_on_its_window(segment_model, tmp_path, seed, largest):
    _, model = segment_model
    signal = voiced(5.3, seed)
    decisions = list(model.stream(random_chunks(signal, seed, largest), window=2.0, hop=0.5))
    # the first once 2 s have arrived, then every 0.5 s; the last covers the partial hop up to 5.3 s
    assert [d.start for d in decisions] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, pytest.approx(3.3)]
    assert [d.end for d in decisions] == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, pytest.approx(5.3)]
    assert [d.final for d in decisions] == [False] * 7 + [True]
    for d in decisions:
        label, probs = file_answer(model, signal[round(d.start * SR) : round(d.end * SR)], tmp_path / "w.wav")
        assert d.label == label and list(d.probabilities) == model.labels
        torch.testing.assert_close(torch.tensor(list(d.probabilities.values())), probs, atol=1e-5, rtol=0)
        assert d.latency_ms >= d.compute_ms > 0
    assert len({round(max(d.probabilities.values()), 4) for d in decisions}) > 2  # the windows' answers differ


def test_short_streams(segment_model, tmp_path):
    _, model = segment_model
    signal = voiced(1.2, 3)
    (only,) = model.stream(random_chunks(signal, 3, 5000), window=2.0, hop=0.5)  # shorter than the window
    assert (only.start, only.end, only.final) == (0.0, pytest.approx(1.2), True)
    label, probs = file_answer(model, signal, tmp_path / "w.wav")
    assert only.label == label
    torch.testing.assert_close(torch.tensor(list(only.probabilities.values())), probs, atol=1e-5, rtol=0)
    assert list(model.stream([signal[:800]])) == []  # 50 ms: too short for a decision
    assert [d.end for d in model.stream([voiced(3.0)], window=2.0, hop=0.5)] == [2.0, 2.5, 3.0]  # no partial hop left


@pytest.mark.parametrize("window,hop", [(1.0, 0.25), (0.5, 0.75)])  # overlapping windows; hop longer than the window
def test_memory_is_one_window_whatever_the_chunks(window, hop):
    signal = np.arange(int(7.1 * SR), dtype=np.float32)  # each sample its index: windows are checked exactly
    stream = WindowStream(window, hop)
    size = int(window * SR)
    data = stream.buffer.data
    windows = []
    for chunk in random_chunks(signal, 5, 5 * size):  # chunks up to five windows long
        windows += list(stream.feed(chunk))
        assert stream.buffer.data is data and data.size == size and len(stream.buffer) <= size
    windows += list(stream.flush())
    assert stream.buffer.total == len(signal)
    for start, end, samples in windows:
        assert end - start == len(samples) == size
        np.testing.assert_array_equal(samples, signal[start:end])
    ends = [end for _, end, _ in windows]
    regular = list(range(size, len(signal) + 1, int(hop * SR)))
    assert ends == regular + ([len(signal)] if regular[-1] < len(signal) else [])


def test_command_line_reads_pcm_from_stdin(segment_model, tmp_path):
    folder, model = segment_model
    signal = voiced(4.3, 7)
    pcm = np.clip(np.round(signal * 32768), -32768, 32767).astype("<i2")
    cmd = [sys.executable, "-m", "speechbrain_ext.stream", "--model", str(folder), "--savedir", str(tmp_path / "c")]
    proc = subprocess.run([*cmd, "-", "--json"], input=pcm.tobytes(), capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert all(set(r) == {"start", "end", "label", "probabilities", "latency_ms"} for r in lines)
    # one line per hop, in time order, up to the end of the stream (4.3 s: a last partial hop)
    assert [r["end"] for r in lines] == [2.0, 2.5, 3.0, 3.5, 4.0, 4.3]
    assert [r["start"] for r in lines] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.3]
    expected = list(model.stream([pcm], window=2.0, hop=0.5))  # int16 chunks: the same samples the command read
    for r, d in zip(lines, expected):
        assert r["label"] == d.label and r["latency_ms"] > 0
        assert list(r["probabilities"].values()) == pytest.approx(list(d.probabilities.values()), abs=1e-5)
    assert "6 decisions over 4.30 s of audio; latency median" in proc.stderr.decode()
    soundfile.write(tmp_path / "call.wav", pcm, SR, subtype="PCM_16")  # a file gives the same lines
    proc = subprocess.run([*cmd, str(tmp_path / "call.wav"), "--json"], capture_output=True, cwd=REPO, timeout=120)
    from_file = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["end"] for r in from_file] == [r["end"] for r in lines]
    for r, d in zip(from_file, expected):
        assert list(r["probabilities"].values()) == pytest.approx(list(d.probabilities.values()), abs=1e-5)


def test_realtime_pacing_measures_latency_on_the_stream_clock(segment_model):
    _, model = segment_model
    signal = voiced(2.6, 9)
    pacer = Pacer()
    began = time.perf_counter()
    decisions = list(model.stream(pacer(random_chunks(signal, 9, 2000)), 2.0, 0.5, clock=pacer.clock))
    assert time.perf_counter() - began >= 2.4  # released at the speed it plays
    assert [d.end for d in decisions] == [2.0, 2.5, pytest.approx(2.6)]
    assert all(0 < d.latency_ms < 500 for d in decisions)  # the tiny model keeps up: well within a hop


def test_benchmark_smoke_run(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_stream", REPO / "benchmarks" / "bench_stream.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        result = bench.run(threads=1, seconds=3.0, configs=((1.0, 0.5),), small=True)
    finally:
        torch.set_num_threads(threads)
    (row,) = result["rows"]
    assert row["decisions"] == 5 and row["max_prob_difference"] < 1e-5  # ends 1.0, 1.5, 2.0, 2.5, 3.0 s
    assert row["rtf"] == pytest.approx(row["stream_ms"] * row["decisions"] / 3000.0)
    assert "1/0.5" in capsys.readouterr().out
