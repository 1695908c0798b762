"""Session fixtures: tiny models and synthetic corpora are built once per run."""

import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from data_prep.synthetic import generate_corpus
from speechbrain_ext.testing.tiny_models import write_tiny_models
from tests.forked import recipe_pool, run_command

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
def trained_ravdess(tmp_path_factory, synthetic_ravdess, tiny_models):
    """Output folder of RAVDESS segments + triplet (S) (what ``make demo`` trains) on the synthetic corpus, and its seconds.

    One trained run shared by the learning, report, resume, export and inference tests.
    """

    out = tmp_path_factory.mktemp("ravdess_triplet_seg")
    start = time.time()
    run_recipe(
        REPO / "recipes/RAVDESS/hparams/triplet_seg.yaml",
        synthetic_ravdess,
        out,
        f"--ssl_hub={tiny_models['wav2vec2']}",
        f"--number_of_epochs={RECIPE_EPOCHS}",
        *RECIPE_OVERRIDES,
    )
    seconds = time.time() - start
    report = json.loads((out / "test_report.json").read_text())
    print(f"\nRAVDESS triplet_seg (tiny wav2vec2, synthetic): test UAR {report['UAR']:.3f}, WA {report['WA']:.3f}, {seconds:.0f} s")
    return {"folder": out, "seconds": seconds, "report": report}


# The recipe registry: every hparams file trained once for one epoch on its synthetic corpus.
REGISTRY = REPO / "recipes" / "registry.csv"
ROWS = list(csv.DictReader(REGISTRY.open(encoding="utf-8")))
# Small corpora: every speaker split the protocol needs, few files each.
SYNTHETIC = {
    "RAVDESS": {"speakers": 6, "repetitions": 1},
    "IEMOCAP": {"speakers": 10},
    "FESC": {"speakers": 9, "utterances_per_emotion": 2},
    "Hume-Prosody": {"speakers": 10, "files_per_speaker": 9},
    "HealthCall30": {"speakers": 10, "files_per_speaker": 8},
}
# Code that reads hparams: the shared library and every train.py.
CODE_FILES = [*sorted((REPO / "speechbrain_ext").glob("*.py")), *sorted((REPO / "recipes").glob("*/train.py"))]


def top_level_keys(yaml_file: Path) -> list[str]:
    return [k for k in YAML(typ="rt").load(yaml_file.read_text(encoding="utf-8")) if not k.startswith("__")]


@pytest.fixture(scope="session")
def registry_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry_corpora")
    return {name: generate_corpus(name, root / name, seed=1, progress=False, **options) for name, options in SYNTHETIC.items()}


def row_folder(root: Path, hparams: str) -> Path:
    """Where the registry fixture trains a row: ``<root>/<corpus>/<method>``."""
    return root / Path(hparams).parent.parent.name / Path(hparams).stem


def debug_overrides(row: dict, tiny_models: dict, root: Path) -> list[str]:
    """A row's debug overrides with the tiny models and, for early fusion, the folders of the runs it fuses."""
    runs = {f"{r['corpus']}/{Path(r['hparams']).stem}": row_folder(root, r["hparams"]) for r in ROWS}
    return shlex.split(row["debug_overrides"].format(runs=runs, **{f"tiny_{name}": path for name, path in tiny_models.items()}))


@pytest.fixture(scope="session")
def registry_runs(tmp_path_factory, registry_corpora, tiny_models):
    """Every registry row trained once (two at a time, one thread each; rows that fuse other runs after them); hparams path -> run info."""
    root = tmp_path_factory.mktemp("registry_runs")

    def command(row):
        hparams = REPO / row["hparams"]
        keys = top_level_keys(hparams)  # a text recipe has no SSL encoder: pass what the YAML has
        shared = [o for o in (f"--ssl_hub={tiny_models['wav2vec2']}", *RECIPE_OVERRIDES) if o.split("=")[0][2:] in keys or o == "--noprogressbar"]
        return recipe_command(hparams, registry_corpora[row["corpus"]], row_folder(root, row["hparams"]), *shared, *debug_overrides(row, tiny_models, root))

    runs = {}
    with recipe_pool(workers=2, threads=1) as pool:
        for wave in ([r for r in ROWS if "{runs[" not in r["debug_overrides"]], [r for r in ROWS if "{runs[" in r["debug_overrides"]]):
            jobs = {r["hparams"]: pool.submit(run_command, command(r), str(REPO)) for r in wave}
            for hparams, job in jobs.items():
                proc = job.result()
                runs[hparams] = {"folder": row_folder(root, hparams), "proc": proc, "seconds": proc.seconds}
    print("\nregistry runs (s): " + ", ".join(f"{Path(k).parent.parent.name}/{Path(k).stem} {v['seconds']:.0f}" for k, v in runs.items()))
    return runs
