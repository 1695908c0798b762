"""Classify audio files with an exported or published model.

    python -m speechbrain_ext.classify --model my_model a.wav b.wav
    python -m speechbrain_ext.classify --model my_model clips/*.wav --device cuda --batch-size 16
    python -m speechbrain_ext.classify --model org/name calls/*.wav --segments --json
    python -m speechbrain_ext.classify --model bayes_model a.wav --samples 500
    python -m speechbrain_ext.classify --model my_model a.wav --prediction-set --alpha 0.1
    python -m speechbrain_ext.classify --model my_model a.wav --abstain 0.1

``--model`` is an exported folder or a Hugging Face hub id. Files may have
any sample rate, channel count and length. A file that cannot be read is
reported by name and the others are still classified (exit status 1).

``--batch-size N`` (N > 1) reads and resamples the files in background
workers (``--num-workers``), sorts them by duration and runs up to N at a
time on ``--device``. It is exact -- every file gets its one-by-one answer
to float rounding -- whatever the encoder, because the model's own
configuration decides what may share a batch:

- layer-norm feature extractors given the attention mask
  (``feat_extract_norm: layer`` and ``use_attention_mask``; wav2vec2-large,
  XLSR, HuBERT-large, WavLM-large): files of any lengths, padded;
- group-norm feature extractors (wav2vec2-base, HuBERT-base): only files of
  the same length, so nothing is padded (a batch of many lengths runs as
  several smaller batches);
- models that read transcripts, and files over one 30 s chunk: one at a time.

``--prediction-set`` prints each file's split-conformal set (``--alpha``,
default the run's, e.g. 0.1: it holds the true label with probability at
least ``1 - alpha`` on data like the run's validation split) and its
out-of-distribution flags; ``--abstain ALPHA`` prints ``unsure`` (JSON
``"label": null``) when the set at ``ALPHA`` is not a single label. Both need
a model exported from a calibrated run, print temperature-scaled
probabilities, and apply per segment with ``--segments``.

``--segments`` and ``--samples`` always run one file at a time.
``--benchmark`` classifies the files both ways and prints files per second
one-by-one and batched, side by side, with the largest difference in
probability between the two answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from tqdm import tqdm

from speechbrain_ext.data.audio import AudioLoadError


def load_model(source: str, savedir: str | None = None, device: str | None = None):
    """Load an exported folder or hub repo with the interface its hparams call for, on ``device`` (default: SpeechBrain's guess, a GPU if any)."""
    from pathlib import Path

    from speechbrain_ext.serving.inference import EmotionClassifier, interface_for
    from speechbrain_ext.utils.hyperparams import plain_values

    hparams = Path(source) / "hyperparams.yaml"
    cls = interface_for(plain_values(hparams)) if hparams.is_file() else EmotionClassifier
    run_opts = {"device": device} if device else None
    return cls.from_hparams(
        source=source, savedir=savedir or f"pretrained_models/{Path(source).name}", run_opts=run_opts
    )


def classify_one(model, path: str, segments: bool, samples: int | None, sets: dict | None = None) -> dict:
    """Result of one file as a JSON-ready dict (``sets``: ``prediction_set``/``abstain``/``alpha`` options)."""
    from speechbrain_ext.serving.inference import EmotionRegressor

    if isinstance(model, EmotionRegressor):
        return {"file": path, "intensities": model.predict_file(path)}
    if segments:
        return {
            "file": path,
            "segments": [
                {k: v for k, v in asdict(s).items() if v is not None or k == "label"}
                for s in model.classify_file(path, segments=True, n_samples=samples, **(sets or {}))
            ],
        }
    labels = model.labels
    if sets:
        return decision_result(model, path, model.classify_file(path, n_samples=samples, **sets))
    if samples and model.is_bayesian:
        u = model.uncertainty_file(path, n_samples=samples)
        probs = u["mean_probs"][0].tolist()
        return {
            "file": path,
            "label": u["labels"][0],
            "probabilities": dict(zip(labels, [round(p, 6) for p in probs])),
            "std": dict(zip(labels, [round(p, 6) for p in u["std_probs"][0].tolist()])),
            "entropy": round(float(u["entropy"][0]), 6),
            "mutual_information": round(float(u["mutual_information"][0]), 6),
            "samples": samples,
        }
    return decision_result(model, path, model.classify_file(path))


def decision_result(model, path: str, decision) -> dict:
    """A ``classify_file`` answer ``(out_prob, score, index, text_lab[, sets])`` as a JSON-ready dict."""
    out_prob, _, _, text_lab, *sets = decision
    result = {
        "file": path,
        "label": text_lab[0],
        "probabilities": dict(zip(model.labels, [round(p, 6) for p in out_prob[0].exp().tolist()])),
    }
    if sets:
        answer = sets[0][0]
        result.update(set=answer.labels, alpha=answer.alpha, method=answer.method, ood=answer.ood)
    return result


def classify_batched(
    model, paths: list[str], batch_size: int, num_workers: int | None, progress: bool = True, sets: dict | None = None
) -> list[dict]:
    """Results of ``classify_files`` / ``predict_files`` as JSON-ready dicts, in input order."""
    from speechbrain_ext.serving.inference import EmotionRegressor

    if isinstance(model, EmotionRegressor):
        answers = model.predict_files(paths, batch_size=batch_size, num_workers=num_workers, progress=progress)
        return [
            {"file": p, "error": str(a)} if isinstance(a, Exception) else {"file": p, "intensities": a}
            for p, a in zip(paths, answers)
        ]
    answers = model.classify_files(
        paths, batch_size=batch_size, num_workers=num_workers, progress=progress, **(sets or {})
    )
    return [
        {"file": p, "error": str(a)} if isinstance(a, Exception) else decision_result(model, p, a)
        for p, a in zip(paths, answers)
    ]


def iter_one_by_one(
    model,
    paths: list[str],
    segments: bool = False,
    samples: int | None = None,
    progress: bool = True,
    sets: dict | None = None,
):
    """Results of one file at a time, as each is done (a file that cannot be read gives ``{"file", "error"}``)."""
    for path in tqdm(paths, desc="classifying", unit="file", disable=not progress or len(paths) < 2, file=sys.stderr):
        try:
            yield classify_one(model, path, segments, samples, sets)
        except AudioLoadError as err:
            yield {"file": path, "error": str(err)}


def _values(result: dict) -> list[float]:
    return list(result.get("probabilities", result.get("intensities", {})).values())


def benchmark(model, paths: list[str], batch_size: int, num_workers: int | None) -> str:
    """Files per second one-by-one and batched over the same files, and how far apart their answers are."""
    list(iter_one_by_one(model, paths[:1], progress=False))  # warm-up: the first forward pass pays for allocations
    start = time.perf_counter()
    single = list(iter_one_by_one(model, paths, progress=False))
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = classify_batched(model, paths, batch_size, num_workers, progress=False)
    batched_s = time.perf_counter() - start
    good = [(a, b) for a, b in zip(single, batched) if "error" not in a and "error" not in b]
    diff = max((abs(x - y) for a, b in good for x, y in zip(_values(a), _values(b))), default=0.0)
    same = sum(a.get("label") == b.get("label") for a, b in good)
    return (
        f"{len(paths)} files on {model.device}, exact batching: {model.batch_exact}\n"
        f"one-by-one : {len(paths) / single_s:8.1f} files/s ({single_s:.2f} s)\n"
        f"batch {batch_size:<4} : {len(paths) / batched_s:8.1f} files/s ({batched_s:.2f} s), {single_s / batched_s:.2f}x\n"
        f"largest difference {diff:.2g}, same label {same}/{len(good)}"
    )


def _set_text(result: dict) -> str:
    """The set part of a text line: ``  set {a, b} at alpha 0.1, OOD: knn_distance``."""
    if "set" not in result:
        return ""
    flagged = [name for name, flag in result.get("ood", {}).items() if flag]
    return f"  set {{{', '.join(result['set'])}}} at alpha {result['alpha']:g}" + (
        f", out of distribution: {', '.join(flagged)}" if flagged else ""
    )


def format_result(result: dict) -> str:
    """One human-readable block per file.

    Example
    -------
    >>> print(format_result({"file": "a.wav", "label": None, "probabilities": {"x": 0.6, "y": 0.4},
    ...                      "set": ["x", "y"], "alpha": 0.1, "ood": {"knn_distance": True}}))
    a.wav: unsure  set {x, y} at alpha 0.1, out of distribution: knn_distance
    """
    if "error" in result:
        return f"{result['file']}: ERROR {result['error']}"
    if "intensities" in result:
        return f"{result['file']}: " + ", ".join(f"{k} {v:.3f}" for k, v in result["intensities"].items())
    if "segments" in result:
        rows = [f"{result['file']}:"] + [
            f"  {s['start']:8.2f}-{s['end']:8.2f} s  {s['label'] or 'unsure':<12} {max(s['probabilities'].values()):.3f}"
            + (f"  set {{{', '.join(s['prediction_set'])}}}" if "prediction_set" in s else "")
            for s in result["segments"]
        ]
        return "\n".join(rows)
    extra = (
        f"  entropy {result['entropy']:.3f}, MI {result['mutual_information']:.4f} ({result['samples']} samples)"
        if "entropy" in result
        else ""
    )
    if result["label"] is None:
        return f"{result['file']}: unsure{_set_text(result)}{extra}"
    return f"{result['file']}: {result['label']} ({result['probabilities'][result['label']]:.3f}){_set_text(result)}{extra}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported folder or hub id")
    parser.add_argument("--savedir", help="where hub models are cached")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--segments", action="store_true", help="a timeline of per-segment labels")
    parser.add_argument("--samples", type=int, help="Bayesian models: weight samples to average (e.g. 500)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument(
        "--device",
        help="cpu, cuda, cuda:1, ... (passed as run_opts={'device': ...}; default: a GPU if there is one, else cpu)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="files per forward pass (default 1: one by one). Above 1, exact for every encoder: any lengths together when the feature "
        "extractor is layer-normed and given the attention mask, only equal lengths together for group-norm ones (see above). "
        "--segments and --samples stay one by one",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        help="background processes reading and resampling files with --batch-size > 1 (default: 2 beside a GPU; on the CPU, min(2, the cores its threads leave free))",
    )
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help="classify one by one and with --batch-size, print files/s of both and their largest difference",
    )
    calibrated = parser.add_mutually_exclusive_group()
    calibrated.add_argument(
        "--prediction-set",
        action="store_true",
        help="print each file's conformal prediction set at --alpha (a model exported from a calibrated run)",
    )
    calibrated.add_argument(
        "--abstain",
        type=float,
        metavar="ALPHA",
        help="answer 'unsure' (JSON label null) when the prediction set at ALPHA is not a single label",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        help="--prediction-set: miscoverage of the sets (default: the run's, e.g. 0.1; coverage >= 1 - alpha)",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.alpha is not None and not args.prediction_set:
        parser.error("--alpha goes with --prediction-set (--abstain takes its own alpha)")
    for name, value in (("--alpha", args.alpha), ("--abstain", args.abstain)):
        if value is not None and not 0.0 < value < 1.0:
            parser.error(f"{name} must lie in (0, 1), got {value}")
    sets = (
        {"prediction_set": True, "alpha": args.alpha}
        if args.prediction_set
        else {"abstain": args.abstain}
        if args.abstain is not None
        else None
    )
    model = load_model(args.model, args.savedir, args.device)
    if sets and getattr(model, "calibration", None) is None:
        parser.error(
            f"{args.model} carries no calibration (calibration.ckpt): export a run whose calibration stage ran"
        )
    if args.benchmark:
        print(benchmark(model, args.files, max(2, args.batch_size), args.num_workers))
        return 0
    start = time.perf_counter()
    results = []
    if args.batch_size > 1 and not args.segments and not args.samples:
        for result in classify_batched(model, args.files, args.batch_size, args.num_workers, sets=sets):
            results.append(result)
            print(json.dumps(result) if args.json else format_result(result))
    else:
        for result in iter_one_by_one(model, args.files, args.segments, args.samples, sets=sets):
            results.append(result)
            tqdm.write(json.dumps(result) if args.json else format_result(result))
    seconds = time.perf_counter() - start
    if len(args.files) > 1:
        print(
            f"{len(args.files)} files in {seconds:.2f} s ({len(args.files) / seconds:.1f} files/s, batch size {args.batch_size}, {model.device})",
            file=sys.stderr,
        )
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
