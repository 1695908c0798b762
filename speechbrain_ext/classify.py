"""Classify audio files with an exported or published model.

    python -m speechbrain_ext.classify --model my_model a.wav b.wav
    python -m speechbrain_ext.classify --model org/name calls/*.wav --segments --json
    python -m speechbrain_ext.classify --model bayes_model a.wav --samples 500

``--model`` is an exported folder or a Hugging Face hub id. Files may have
any sample rate, channel count and length. A file that cannot be read is
reported by name and the others are still classified (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from tqdm import tqdm

from speechbrain_ext.audio import AudioLoadError


def load_model(source: str, savedir: str | None = None):
    """Load an exported folder or hub repo with the interface its hparams call for."""
    from pathlib import Path

    from ruamel.yaml import YAML

    from speechbrain_ext.inference import EmotionClassifier, interface_for

    hparams = Path(source) / "hyperparams.yaml"
    cls = interface_for(YAML(typ="rt").load(hparams.read_text(encoding="utf-8"))) if hparams.is_file() else EmotionClassifier
    return cls.from_hparams(source=source, savedir=savedir or f"pretrained_models/{Path(source).name}")


def classify_one(model, path: str, segments: bool, samples: int | None) -> dict:
    """Result of one file as a JSON-ready dict."""
    from speechbrain_ext.inference import EmotionRegressor

    if isinstance(model, EmotionRegressor):
        return {"file": path, "intensities": model.predict_file(path)}
    if segments:
        return {"file": path, "segments": [asdict(s) for s in model.classify_file(path, segments=True, n_samples=samples)]}
    labels = model.labels
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
    out_prob, _, _, text_lab = model.classify_file(path)
    return {"file": path, "label": text_lab[0], "probabilities": dict(zip(labels, [round(p, 6) for p in out_prob[0].exp().tolist()]))}


def format_result(result: dict) -> str:
    """One human-readable block per file."""
    if "error" in result:
        return f"{result['file']}: ERROR {result['error']}"
    if "intensities" in result:
        return f"{result['file']}: " + ", ".join(f"{k} {v:.3f}" for k, v in result["intensities"].items())
    if "segments" in result:
        rows = [f"{result['file']}:"] + [
            f"  {s['start']:8.2f}-{s['end']:8.2f} s  {s['label']:<12} {max(s['probabilities'].values()):.3f}" for s in result["segments"]
        ]
        return "\n".join(rows)
    extra = f"  entropy {result['entropy']:.3f}, MI {result['mutual_information']:.4f} ({result['samples']} samples)" if "entropy" in result else ""
    return f"{result['file']}: {result['label']} ({result['probabilities'][result['label']]:.3f}){extra}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported folder or hub id")
    parser.add_argument("--savedir", help="where hub models are cached")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--segments", action="store_true", help="a timeline of per-segment labels")
    parser.add_argument("--samples", type=int, help="Bayesian models: weight samples to average (e.g. 500)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    args = parser.parse_args(argv)
    model = load_model(args.model, args.savedir)
    status = 0
    for path in tqdm(args.files, desc="classifying", unit="file", disable=len(args.files) < 2, file=sys.stderr):
        try:
            result = classify_one(model, path, args.segments, args.samples)
        except AudioLoadError as err:
            result, status = {"file": path, "error": str(err)}, 1
        tqdm.write(json.dumps(result) if args.json else format_result(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
