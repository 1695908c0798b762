"""Scale and deployment figures of issue 15 in one run, each as a ratio to a baseline measured in the same run.

a. Padding waste (padded frames / all frames): shuffled fixed-size batches
   of 8 (what the recipes do today) vs duration buckets
   (:func:`speechbrain_ext.data.batching.duration_batch_sampler`, SpeechBrain's
   ``DynamicBatchSampler``) whose ``max_batch_seconds`` is chosen so that a
   batch holds 8 files on average, on the durations of the real RAVDESS
   sample (``../shared/data/ravdess_sample``, skipped when absent) and on a
   long-tailed synthetic set (lognormal, 5,000 durations, mean about 4 s,
   tail to 30 s, seeded). Each waste is the mean over ``--epochs`` epochs
   (new shuffles). Target: <= 10 % with buckets.
b. fp32 vs bf16 step time: one training step (forward, backward, Adam step)
   of a randomly initialised wav2vec2-base-sized encoder (``Wav2Vec2Config()``,
   with ``layerdrop=0`` so every step runs the same layers, and the
   convolutional feature encoder frozen as the recipes' default
   ``freeze_feature_extractor``) + mean pooling + linear head on a batch of
   8 x 4 s, in fp32 and under ``torch.autocast(dtype=torch.bfloat16)``
   (loss in fp32), on CUDA when available, else on the CPU. The two take
   turns; each is the best of ``--repeats`` after a warm-up.
c. Inference throughput: ``run`` of ``benchmarks/bench_onnx.py`` (bare
   encoder, ``EmotionClassifier.classify_batch``, ONNX, transformers'
   pipeline); "not available" when that file or its ``run`` is missing.
d. kNN: ``run`` of ``benchmarks/bench_knn.py`` (1,000 queries x 100,000 x 256,
   seconds and ratios to a bare matmul + top-k).

``--small`` is a smoke run (a tiny encoder on 2 x 1 s, small kNN and
ONNX sizes, 500 synthetic durations). Nothing is downloaded.

Usage: ``python benchmarks/bench_scale.py [--small] [--threads 2] [--repeats 3] [--skip onnx knn]``
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAVDESS_SAMPLE = HERE.parent.parent / "shared" / "data" / "ravdess_sample"
SECTIONS = ("padding", "precision", "onnx", "knn")
WASTE_TARGET = 0.10


def _load(name: str):
    """A module of this folder by file name, or None when the file is absent."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(fn, **kwargs):
    """``fn`` with the keyword arguments it accepts (the other benchmarks' signatures may grow or shrink)."""
    accepted = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in accepted})


# a. padding waste


def ravdess_durations(folder: Path = RAVDESS_SAMPLE) -> list[float] | None:
    """Durations (s) of the sample's wav files, or None when the folder is absent."""
    import soundfile

    folder = Path(folder)
    if not folder.is_dir():
        return None
    return [soundfile.info(str(path)).duration for path in sorted(folder.rglob("*.wav"))] or None


def synthetic_durations(
    n: int = 5000, mean: float = 4.0, sigma: float = 0.7, low: float = 0.5, high: float = 30.0, seed: int = 0
) -> list[float]:
    """Long-tailed durations: lognormal with the given mean (before clipping to ``[low, high]``)."""
    import numpy as np

    mu = np.log(mean) - sigma**2 / 2
    return np.random.default_rng(seed).lognormal(mu, sigma, n).clip(low, high).tolist()


def padding_comparison(
    durations: list[float], batch_size: int = 8, epochs: int = 5, num_buckets: int | None = None, seed: int = 0
) -> dict:
    """Waste of random fixed-size batches vs duration buckets matched to the same mean batch size, over ``epochs`` epochs."""
    import numpy as np

    from speechbrain_ext.data.batching import (
        DEFAULT_NUM_BUCKETS,
        duration_batch_sampler,
        max_seconds_for_batch_size,
        padding_waste,
        random_batches,
        sampler_batches,
    )

    num_buckets = num_buckets or DEFAULT_NUM_BUCKETS
    limit = max_seconds_for_batch_size(durations, batch_size, num_buckets=num_buckets, seed=seed)
    sampler = duration_batch_sampler(durations, limit, num_buckets=num_buckets, seed=seed)
    random_waste, bucket_waste, sizes, longest = [], [], [], []
    for epoch in range(epochs):
        random_waste.append(padding_waste(random_batches(durations, batch_size, seed + epoch)))
        sampler.set_epoch(epoch)
        batches = sampler_batches(sampler, durations)
        bucket_waste.append(padding_waste(batches))
        sizes.append(len(durations) / len(batches))
        longest.append(max(sum(b) for b in batches if len(b) > 1))
    return {
        "n": len(durations),
        "mean_seconds": float(np.mean(durations)),
        "max_seconds": float(np.max(durations)),
        "random": float(np.mean(random_waste)),
        "bucketed": float(np.mean(bucket_waste)),
        "max_batch_seconds": limit,
        "num_buckets": num_buckets,
        "mean_batch_size": float(np.mean(sizes)),
        "fullest_batch_seconds": float(max(longest)),
        "met": float(np.mean(bucket_waste)) <= WASTE_TARGET,
    }


def bench_padding(small: bool = False, epochs: int = 5, ravdess: Path = RAVDESS_SAMPLE) -> dict:
    """Section a: print and return the waste of both batchings on both distributions."""
    print("\n== a. Padding waste (padded frames / all frames): random batches of 8 vs duration buckets ==")
    sets = {}
    real = ravdess_durations(ravdess)
    if real is None:
        print(f"    RAVDESS sample: skipped ({ravdess} is absent)")
    else:
        sets["RAVDESS sample (real)"] = real
    n = 500 if small else 5000
    sets[f"lognormal synthetic ({n}, seed 0)"] = synthetic_durations(n)
    results = {name: padding_comparison(d, epochs=epochs) for name, d in sets.items()}
    print(
        f"    {'durations':34} {'files':>6} {'mean s':>7} {'max s':>6} {'random':>8} {'buckets':>8} {'random/buckets':>15} {'max batch s':>12} {'files/batch':>12}"
    )
    for name, r in results.items():
        print(
            f"    {name:34} {r['n']:6d} {r['mean_seconds']:7.2f} {r['max_seconds']:6.1f} {r['random']:8.1%} {r['bucketed']:8.1%} "
            f"{r['random'] / max(r['bucketed'], 1e-12):14.1f}x {r['max_batch_seconds']:12.1f} {r['mean_batch_size']:12.2f}"
        )
    print(
        f"    (mean over {epochs} epochs; buckets: {next(iter(results.values()))['num_buckets']} of SpeechBrain's DynamicBatchSampler)"
    )
    for name, r in results.items():
        print(
            f"    target buckets <= {WASTE_TARGET:.0%} on {name}: {'met' if r['met'] else 'MISSED'} ({r['bucketed']:.2%})"
        )
    return results


# b. fp32 vs bf16 training step


def bench_precision(
    small: bool = False, repeats: int = 3, batch: int | None = None, seconds: float | None = None, seed: int = 0
) -> dict:
    """Section b: best step time in fp32 and under bf16 autocast on the same batch; prints the device and the ratio."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    batch = batch or (2 if small else 8)
    seconds = seconds or (1.0 if small else 4.0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    )
    torch.manual_seed(seed)
    config = Wav2Vec2Config(**(_tiny_config() if small else {}), layerdrop=0.0)
    encoder = Wav2Vec2Model(config).to(device).train()
    encoder.feature_extractor._freeze_parameters()  # the recipes' default freeze_feature_extractor
    head = torch.nn.Linear(config.hidden_size, 4).to(device)
    optimizer = torch.optim.Adam([p for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad], lr=1e-5)
    wavs = torch.randn(batch, int(seconds * 16000), device=device)
    labels = torch.arange(batch, device=device) % 4

    def step(bf16: bool) -> float:
        synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = head(encoder(wavs).last_hidden_state.mean(dim=1))
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)  # the loss stays fp32
        loss.backward()
        optimizer.step()
        synchronize()
        return time.perf_counter() - start

    kinds = {"fp32": False, "bf16 autocast": True}
    for bf16 in kinds.values():  # warm-up
        step(bf16)
    times = {name: [] for name in kinds}
    for _ in range(max(1, repeats)):
        for name, bf16 in kinds.items():
            times[name].append(step(bf16))
    best = {name: min(t) for name, t in times.items()}
    ratio = best["bf16 autocast"] / best["fp32"]
    encoder_name = "tiny wav2vec2 (--small)" if small else "wav2vec2-base-sized (Wav2Vec2Config(), random weights)"
    print("\n== b. Training step, fp32 vs bf16 (forward + backward + Adam step) ==")
    print(
        f"    device: {device_name}; {encoder_name} + mean pooling + linear head; batch {batch} x {seconds:g} s; best of {max(1, repeats)} after a warm-up"
    )
    for name, t in best.items():
        print(f"    {name:14} {t:8.3f} s/step")
    verdict = "bf16 faster" if ratio < 1 else "bf16 SLOWER"
    print(f"    bf16 / fp32 step time on {device_name}: {ratio:.3f}x ({verdict}; speed-up {1 / ratio:.2f}x)")
    return {"device": device_name, "batch": batch, "seconds": seconds, "step_seconds": best, "bf16_over_fp32": ratio}


# c. inference throughput


def _tiny_config() -> dict:
    """--small: bench_onnx's tiny wav2vec2 (the base model's convolution strides), without its classifier size."""
    return {k: v for k, v in _load("bench_onnx").SMALL.items() if k != "classifier_proj_size"}


def bench_onnx(small: bool = False, threads: int = 2, repeats: int = 3) -> dict | None:
    """Section c: ``bench_onnx.run`` and its ratios, or None (printed "not available") without it."""
    print("\n== c. Inference throughput: ours vs HF pipeline vs ONNX ==")
    module = _load("bench_onnx")
    if module is None or not callable(getattr(module, "run", None)):
        print("    not available (benchmarks/bench_onnx.py or its run() is missing)")
        return None
    kwargs = {"threads": threads, "small": small, "repeats": repeats, "verbose": True}
    if small:
        kwargs.update(n_files=4, min_seconds=1.0, max_seconds=2.0)
    result = _call(module.run, **kwargs)
    speed = result.get("speed_vs_pipeline", {}) if isinstance(result, dict) else {}
    if speed:
        print(
            "    summary (files/s relative to the transformers pipeline): "
            + "; ".join(f"{name} {ratio:.2f}x" for name, ratio in speed.items())
        )
    return result


# d. kNN at scale


def bench_knn(small: bool = False, threads: int = 2, repeats: int = 5) -> dict | None:
    """Section d: ``bench_knn.run`` (1k queries x 100k x 256; tiny with ``small``)."""
    print("\n== d. kNN search at scale ==")
    module = _load("bench_knn")
    if module is None or not callable(getattr(module, "run", None)):
        print("    not available (benchmarks/bench_knn.py or its run() is missing)")
        return None
    sizes = {"n_store": 5000, "n_query": 100, "dim": 32, "repeats": 1, "n_check": 20} if small else {"repeats": repeats}
    result = _call(module.run, threads=threads, verbose=True, **sizes)
    seconds = result.get("seconds", {})
    if seconds:
        line = ", ".join(f"{name} {s:.3f} s" for name, s in seconds.items())
        print(
            f"    summary: {result.get('n_query')} queries x {result.get('n_store')} stored: {line}; ratio to the floor {result.get('ratio', float('nan')):.3f}x"
        )
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch (and onnxruntime) threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (best is kept)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs averaged for the padding waste")
    parser.add_argument("--ravdess", type=Path, default=RAVDESS_SAMPLE, help="folder of the RAVDESS sample")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(f"bench_scale: {'--small smoke run' if args.small else 'full sizes'}, {args.threads} threads")
    runs = {
        "padding": lambda: bench_padding(args.small, args.epochs, args.ravdess),
        "precision": lambda: bench_precision(args.small, args.repeats),
        "onnx": lambda: bench_onnx(args.small, args.threads, args.repeats),
        "knn": lambda: bench_knn(args.small, args.threads),  # bench_knn's own 5 repeats
    }
    results, failed = {}, []
    for name, fn in runs.items():
        if name in args.skip:
            print(f"\n== {name}: skipped (--skip) ==")
            continue
        start = time.perf_counter()
        try:
            results[name] = fn()
        except Exception:  # one section's failure must not hide the others' figures
            traceback.print_exc()
            print(f"    {name}: FAILED (traceback above)")
            failed.append(name)
        torch.set_num_threads(args.threads)  # a section may have changed it
        print(f"    [{name}: {time.perf_counter() - start:.1f} s]")
    if failed:
        raise SystemExit(f"bench_scale: failed sections: {', '.join(failed)}")
    return results


if __name__ == "__main__":
    main()
