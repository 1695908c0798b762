"""Session fixtures: tiny models and synthetic corpora are built once per run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.synthetic import generate_corpus
from speechbrain_ext.testing.tiny_models import write_tiny_models

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RAVDESS_SAMPLE = SHARED / "data" / "ravdess_sample"

# The recipe test: a tiny wav2vec2 on a 12-actor synthetic RAVDESS (8 training actors,
# validation 21-22, held-out test actors 23-24).
RECIPE_EPOCHS = 10
RECIPE_OVERRIDES = [
    "--allow_subset=True",
    "--encoder_dim=64",
    "--batch_size=8",
    "--lr=0.002",
    "--lr_ssl=0.001",
    "--dataloader_options={batch_size: 8, shuffle: True, num_workers: 0}",
    "--valid_dataloader_options={batch_size: 8, num_workers: 0}",
    "--test_dataloader_options={batch_size: 1, num_workers: 0}",
    "--noprogressbar",
]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Name -> folder of every tiny model (wav2vec2, hubert, wavlm, whisper, bert, camembert)."""
    return write_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def synthetic_ravdess(tmp_path_factory):
    """A 12-actor synthetic RAVDESS with all 60 speech files per actor and a few song files."""
    return generate_corpus("RAVDESS", tmp_path_factory.mktemp("RAVDESS"), speakers=12, seed=0, song=True, progress=False)


def recipe_command(hparams: Path, data_folder: Path, output_folder: Path, *overrides: str) -> list[str]:
    """The command line a user would type for a recipe run."""
    return [
        sys.executable,
        str(hparams.parent.parent / "train.py"),
        str(hparams),
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        *overrides,
    ]


def run_recipe(
    hparams: Path, data_folder: Path, output_folder: Path, *overrides: str, threads: int | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run a recipe as a user would, in a fresh process; fail with its output on error (when ``check``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(recipe_command(hparams, data_folder, output_folder, *overrides), capture_output=True, text=True, cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"recipe failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="session")
def trained_ravdess_baseline(tmp_path_factory, synthetic_ravdess, tiny_models):
    """Output folder of the RAVDESS baseline trained on the synthetic corpus, and its seconds."""
    import time

    out = tmp_path_factory.mktemp("ravdess_baseline")
    start = time.time()
    run_recipe(
        REPO / "recipes/RAVDESS/hparams/baseline.yaml",
        synthetic_ravdess,
        out,
        f"--ssl_hub={tiny_models['wav2vec2']}",
        f"--number_of_epochs={RECIPE_EPOCHS}",
        *RECIPE_OVERRIDES,
    )
    seconds = time.time() - start
    report = json.loads((out / "test_report.json").read_text())
    print(f"\nRAVDESS baseline (tiny wav2vec2, synthetic): test UAR {report['UAR']:.3f}, WA {report['WA']:.3f}, {seconds:.0f} s")
    return {"folder": out, "seconds": seconds, "report": report}
