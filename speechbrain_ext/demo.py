"""The whole chain on this machine, offline, in a few minutes.

Synthesises a small RAVDESS (12 actors, 48 kHz, espeak-ng), writes a tiny
randomly initialised wav2vec2, trains the RAVDESS segments + triplet (S)
recipe (segment_triplet's method) on it, prints the held-out-actor test
table, exports the model and classifies one file with
:class:`speechbrain_ext.inference.EmotionClassifier`.

    python -m speechbrain_ext.demo --out demo_run
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALLED_RECIPES = Path(sysconfig.get_path("data")) / "share" / "speechbrain-paralinguistics" / "recipes"


def recipes_folder() -> Path:
    """The recipes of a checkout, or those installed with the package (``pip install .``)."""
    for folder in (REPO / "recipes", INSTALLED_RECIPES):
        if (folder / "RAVDESS" / "train.py").is_file():
            return folder
    raise FileNotFoundError(f"no recipes found in {REPO / 'recipes'} or {INSTALLED_RECIPES}; install the package with pip, or run from a checkout")


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_run")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    start = time.time()

    from data_prep.synthetic import generate_corpus
    from speechbrain_ext.testing.tiny_models import write_tiny_models

    print("== 1/5 synthesising a 12-actor RAVDESS (actors 1-8 train, 21-22 valid, 23-24 test)")
    corpus = generate_corpus("RAVDESS", out / "RAVDESS", speakers=12, seed=0)
    print("== 2/5 writing a tiny randomly initialised wav2vec2 (stands in for facebook/wav2vec2-base)")
    ssl = write_tiny_models(out / "tiny_models", only=["wav2vec2"])["wav2vec2"]

    recipes = recipes_folder()
    print(f"== 3/5 training {recipes}/RAVDESS/hparams/triplet_seg.yaml (segments + triplet loss on segments)")
    run_folder = out / "triplet_seg"
    cmd = [
        sys.executable,
        str(recipes / "RAVDESS" / "train.py"),
        str(recipes / "RAVDESS" / "hparams" / "triplet_seg.yaml"),
        f"--data_folder={corpus}",
        f"--output_folder={run_folder}",
        f"--ssl_hub={ssl}",
        "--encoder_dim=64",
        "--allow_subset=True",
        f"--number_of_epochs={args.epochs}",
        "--batch_size=8",
        "--lr=0.002",
        "--lr_ssl=0.001",
        "--dataloader_options={batch_size: 8, shuffle: True, num_workers: 0}",
        "--valid_dataloader_options={batch_size: 8, num_workers: 0}",
        "--test_dataloader_options={batch_size: 1, num_workers: 0}",
    ]
    print("   $ " + " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, check=True, cwd=out)

    print("== 4/5 test report (held-out actors 23-24), from", run_folder / "test_report.json")
    print((run_folder / "test_report.md").read_text())

    print("== 5/5 exporting the model and classifying one file")
    from speechbrain_ext.hub import check_standalone, export_model
    from speechbrain_ext.inference import EmotionClassifier

    model_dir = export_model(run_folder / "hyperparams.yaml", out / "model")
    check_standalone(model_dir)  # no path of this machine, encoder configuration inside: loads anywhere, offline
    print(f"   exported to {model_dir} (stand-alone: encoder configuration inside, all weights in model.ckpt)")
    classifier = EmotionClassifier.from_hparams(source=str(model_dir), savedir=str(out / "model_cache"))
    wav = corpus / "Actor_23" / "03-01-05-02-01-01-23.wav"  # angry, strong intensity
    out_prob, score, index, text_lab = classifier.classify_file(wav)
    probs = out_prob.exp()[0]
    labels = [classifier.hparams.label_encoder.ind2lab[i] for i in range(len(probs))]
    print(f"   {wav.name} (reference: angry) -> {text_lab[0]} (p={probs[index[0]]:.2f})")
    print("   " + ", ".join(f"{lab} {p:.2f}" for lab, p in zip(labels, probs.tolist())))
    print(f"== done in {time.time() - start:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
