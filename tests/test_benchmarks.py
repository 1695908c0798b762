"""The benchmark script runs end to end (on a tiny encoder, so it is quick here)."""

import importlib.util
from pathlib import Path

import pytest
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
    names = list(heads)
    assert names[0].startswith("linear") and "vectorised" in names[1] and "Python loop" in names[2]
    # 50 weight samples in a Python loop cost more than in one batched product: the benchmark measures what it says
    assert heads[names[2]] > heads[names[1]]
    ratio = bench.report("bayes", "encoder", encoder_s, heads, 1.05)
    assert ratio == pytest.approx((encoder_s + heads[names[1]]) / (encoder_s + heads[names[0]]))
    printed = capsys.readouterr().out
    assert f"({ratio:.4f}x)" in printed and ("met" if ratio <= 1.05 else "MISSED") in printed.splitlines()[-1]
    encoder.train()
    encoder_s, heads = bench.bench_segments(encoder, wavs, lens, labels, n_classes=3, repeats=1)
    assert list(heads) == ["mean pooling + NLL", "segments 80/40 + segment NLL + triplet(S)"]
    assert bench.report("seg", "encoder", encoder_s, heads, 1.05) == pytest.approx(
        (encoder_s + heads[list(heads)[1]]) / (encoder_s + heads["mean pooling + NLL"])
    )


def test_cpt_benchmark_reports_the_ratio(tiny_models, capsys):
    spec = importlib.util.spec_from_file_location("bench_cpt", BENCH.with_name("bench_cpt.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    times = bench.bench_steps(tiny_models["hubert"], batch=2, seconds=1.0, clusters=5, repeats=2)
    assert list(times) == ["HuBERT forward + backward + step", "masked-prediction step (CPT)"] and all(
        t > 0 for t in times.values()
    )
    ratio = bench.report(times)
    assert ratio == pytest.approx(times["masked-prediction step (CPT)"] / times["HuBERT forward + backward + step"])
    assert f"({ratio:.4f}x)" in capsys.readouterr().out


def test_train_benchmark_prints_the_three_comparisons(capsys):
    """bench_train end to end on the tiny encoder, six synthetic files, one epoch of the baseline YAML."""
    spec = importlib.util.spec_from_file_location("bench_train", BENCH.with_name("bench_train.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        ratio = bench.main(["--size", "tiny", "--epochs", "1", "--files", "6", "--synthetic", "--yamls", "baseline"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for heading in ("1. training steps", "2. data pipeline", "3. whole epoch"):
        assert heading in out
    assert "48 kHz, 16 kHz cache" in out and "waits for data" in out
    assert 0 < ratio < 10 and out.strip().splitlines()[-1] == f"ratio {ratio:.2f}"
