"""The benchmark script runs end to end (on a tiny encoder, so it is quick here)."""

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModel

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_heads.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_heads", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_functions_and_report(tiny_models, capsys):
    bench = _load()
    encoder = AutoModel.from_pretrained(tiny_models["wav2vec2"]).eval()
    wavs, lens, labels = torch.randn(2, 16000), torch.tensor([1.0, 0.7]), torch.tensor([0, 1])
    encoder_s, heads = bench.bench_bayes(encoder, wavs, lens, n_classes=3, n_samples=50, repeats=1)
    assert encoder_s > 0 and len(heads) == 3 and all(t > 0 for t in heads.values())
    ratio = bench.report("bayes", "encoder", encoder_s, heads, 1.05)
    assert ratio >= 1.0 - 1e-9
    encoder.train()
    encoder_s, heads = bench.bench_segments(encoder, wavs, lens, labels, n_classes=3, repeats=1)
    assert len(heads) == 2
    assert "target <= 1.05x" in capsys.readouterr().out
