"""The whole chain on this machine, offline, in a few minutes.

Synthesises a small RAVDESS (12 actors, 48 kHz, espeak-ng), writes a tiny
randomly initialised wav2vec2, trains the RAVDESS segments + triplet (S)
recipe (segment_triplet's method) on it, prints the held-out-actor test
table, exports the model and classifies one file with
:class:`speechbrain_ext.serving.inference.EmotionClassifier`.

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

REPO = Path(__file__).resolve().parents[2]
INSTALLED_RECIPES = Path(sysconfig.get_path("data")) / "share" / "speechbrain-paralinguistics" / "recipes"


def recipes_folder() -> Path:
    """The recipes of a checkout, or those installed with the package (``pip install .``)."""
    for folder in (REPO / "recipes", INSTALLED_RECIPES):
        if (folder / "RAVDESS" / "train.py").is_file():
            return folder
    raise FileNotFoundError(
        f"no recipes found in {REPO / 'recipes'} or {INSTALLED_RECIPES}; install the package with pip, or run from a checkout"
    )


STANDALONE_CHECK = """
import json, sys
from speechbrain.inference.interfaces import foreign_class
from speechbrain_ext.serving.inference import EmotionClassifier
model, files = sys.argv[1], sys.argv[2:]
loaders = {"from_hparams": EmotionClassifier.from_hparams(source=model, savedir=model + "_a"),
           "foreign_class": foreign_class(source=model, pymodule_file="custom_interface.py", classname="EmotionClassifier", savedir=model + "_b")}
print(json.dumps({name: [m.classify_file(f)[0].exp()[0].tolist() for f in files] for name, m in loaders.items()}))
"""


def check_elsewhere(model_dir: Path, run_folder: Path, corpus: Path, base_models: Path) -> None:
    """Load a copy of the model in a fresh process, offline, with the base models hidden; it must give the test report's probabilities."""
    import json
    import os
    import shutil

    import pandas as pd

    elsewhere = model_dir.with_name("model_elsewhere")
    shutil.rmtree(elsewhere, ignore_errors=True)
    for cache in (elsewhere.with_name("model_elsewhere_a"), elsewhere.with_name("model_elsewhere_b")):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(model_dir, elsewhere)
    rows = pd.read_csv(run_folder / "test_predictions.csv").head(3)
    files = [str(corpus / f"Actor_{utt[-2:]}" / f"{utt}.wav") for utt in rows["id"]]
    hidden = base_models.with_name(base_models.name + ".hidden")
    base_models.rename(hidden)
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", STANDALONE_CHECK, str(elsewhere), *files],
            capture_output=True,
            text=True,
            env=env,
            cwd=elsewhere.parent,
        )
    finally:
        hidden.rename(base_models)
    if proc.returncode != 0:
        raise RuntimeError(f"the exported model did not load elsewhere:\n{proc.stderr[-3000:]}")
    expected = rows[[c for c in rows.columns if c.startswith("p_")]].to_numpy()
    worst = max(
        abs(a - b)
        for probs in json.loads(proc.stdout.strip().splitlines()[-1]).values()
        for row, ref in zip(probs, expected)
        for a, b in zip(row, ref)
    )
    if worst > 1e-5:
        raise RuntimeError(f"the exported model's probabilities differ from the test report's by {worst:.2e}")
    print(
        f"   a copy loads offline in a fresh process without the base model, through from_hparams and foreign_class: test probabilities within {worst:.1e}"
    )


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
    from speechbrain_ext.serving.export.document import check_standalone
    from speechbrain_ext.serving.export.export import export_model
    from speechbrain_ext.serving.inference import EmotionClassifier

    model_dir = export_model(run_folder / "hyperparams.yaml", out / "model")
    check_standalone(model_dir)  # no path of this machine, encoder configuration inside: loads anywhere, offline
    print(f"   exported to {model_dir} (stand-alone: encoder configuration inside, all weights in model.ckpt)")
    check_elsewhere(model_dir, run_folder, corpus, out / "tiny_models")
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
