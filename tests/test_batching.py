"""Duration batching (SpeechBrain's DynamicBatchSampler), padding waste, and the scale benchmark's smoke run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_ext.data.batching import (
    PaddingMeter,
    duration_batch_sampler,
    max_seconds_for_batch_size,
    padding_waste,
    random_batches,
    sampler_batches,
)
from speechbrain_ext.data.dataio import load_split

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


def long_tailed(n: int = 2000, seed: int = 0) -> list[float]:
    """Lognormal durations, mean about 4 s, a tail past 20 s."""
    return np.random.default_rng(seed).lognormal(np.log(4.0) - 0.7**2 / 2, 0.7, n).clip(0.5, 30.0).tolist()


def test_padding_waste_by_hand():
    # batch 1: padded to 4 s, 2 x 4 = 8 s of which 2 + 4 = 6 real; batch 2: 3 x 3 = 9 s, 3 + 3 + 1 = 7 real
    assert padding_waste([[2.0, 4.0], [3.0, 3.0, 1.0]]) == pytest.approx((2 + 2) / (8 + 9))
    assert padding_waste([[5.0], [2.0, 2.0]]) == 0.0
    assert padding_waste([]) == 0.0 and padding_waste([[], [1.0, 3.0]]) == pytest.approx(2 / 6)


def test_random_and_sampler_batches_keep_every_duration():
    durations = long_tailed(101)
    batches = random_batches(durations, 8, seed=3)
    assert [len(b) for b in batches] == [8] * 12 + [5]
    assert sorted(sum(batches, [])) == sorted(durations)
    assert batches != random_batches(durations, 8, seed=4)
    sampler = duration_batch_sampler(durations, 30.0)
    indices = list(sampler)
    assert sampler_batches(indices, durations) == [[durations[i] for i in b] for b in indices]


def test_sampler_limits_and_covers_every_index_each_epoch():
    durations = long_tailed(600) + [41.0, 35.5]  # two files longer than a whole batch
    limit = 30.0
    sampler = duration_batch_sampler(durations, limit, num_buckets=15, seed=1, max_batch_size=12)
    seen_epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(durations))), "every index exactly once per epoch"
        for batch in batches:
            total = sum(durations[i] for i in batch)
            assert len(batch) <= 12
            # DynamicBatchSampler puts a file longer than max_batch_length alone in a batch; otherwise the limit holds
            assert total <= limit or (len(batch) == 1 and durations[batch[0]] > limit), (batch, total)
        for long_file in (600, 601):
            assert [long_file] in batches
        seen_epochs.append(batches)
    assert seen_epochs[0] != seen_epochs[1] != seen_epochs[2]
    # without set_epoch a pass redraws from the same seed + epoch: the same batches (see the module docstring);
    # only their order differs once (DynamicBatchSampler permutes them a second time after a pass)
    again, third = list(sampler), list(sampler)
    assert sorted(again) == sorted(seen_epochs[2]) and again == third


def test_sampler_from_a_manifest_matches_the_durations(tmp_path):
    durations = long_tailed(80, seed=5)
    manifest = {
        f"utt{k:03d}": {"wav": f"{{data_root}}/utt{k:03d}.wav", "duration": d, "emo": "neu"}
        for k, d in enumerate(durations)
    }
    (tmp_path / "train.json").write_text(json.dumps(manifest))
    dataset = load_split(str(tmp_path / "train.json"), str(tmp_path))
    from_dataset = duration_batch_sampler(dataset, 20.0, num_buckets=10, seed=2)
    from_list = duration_batch_sampler(durations, 20.0, num_buckets=10, seed=2)
    assert list(from_dataset) == list(from_list)
    capped = duration_batch_sampler(dataset, 20.0, num_buckets=10, max_item_seconds=3.0)
    assert max(capped.get_durations(range(len(durations)))) == 3.0


def test_buckets_waste_less_than_random_batches():
    durations = long_tailed(2000)
    limit = max_seconds_for_batch_size(durations, 8)
    sampler = duration_batch_sampler(durations, limit)
    buckets = sampler_batches(sampler, durations)
    mean_size = len(durations) / len(buckets)
    random_waste = padding_waste(random_batches(durations, 8, seed=0))
    bucket_waste = padding_waste(buckets)
    print(
        f"long-tailed, 2000 files: random batches of 8 waste {random_waste:.1%}, buckets (<= {limit:.1f} s, {mean_size:.2f} files/batch) {bucket_waste:.1%}"
    )
    assert 8 <= mean_size < 9
    assert random_waste > 0.4 and bucket_waste <= 0.10 and bucket_waste < random_waste / 4


def test_padding_meter_counts_a_padded_batch():
    lengths = [5, 3, 8]
    batch = PaddedBatch([{"id": f"u{k}", "sig": torch.randn(n)} for k, n in enumerate(lengths)])
    wavs, rel_lens = batch.sig
    meter = PaddingMeter()
    meter.update(wavs, rel_lens)
    assert (meter.real, meter.total, meter.padded) == (16, 24, 8)  # 3 files padded to 8 samples
    assert meter.waste == pytest.approx(8 / 24)
    second = PaddedBatch([{"id": "v", "sig": torch.randn(4)}, {"id": "w", "sig": torch.randn(4)}])
    meter.update(*second.sig)
    assert meter.waste == pytest.approx(8 / 32) == pytest.approx(padding_waste([lengths, [4, 4]]))
    meter.reset()
    assert (meter.real, meter.total, meter.waste) == (0, 0, 0.0)


def test_bench_scale_smoke_run(capsys):
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--small", "--skip", "onnx", "--threads", "1", "--repeats", "1", "--epochs", "2"])
    out = capsys.readouterr().out
    for header in ("== a. Padding waste", "== b. Training step, fp32 vs bf16", "== onnx: skipped", "== d. kNN search"):
        assert header in out
    assert "bf16 / fp32 step time on CPU (1 threads)" in out or "bf16 / fp32 step time on" in out
    synthetic = next(r for name, r in results["padding"].items() if name.startswith("lognormal"))
    assert synthetic["bucketed"] < synthetic["random"]
    assert results["precision"]["bf16_over_fp32"] > 0
    assert results["knn"]["n_store"] == 5000 and results["knn"]["sklearn"]["same_as_sklearn"]
    assert "onnx" not in results
