"""Session fixtures: tiny models and synthetic corpora are built once per run."""

import csv
import json
import os
import shlex
import subprocess
import sys
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
    return generate_corpus(
        "RAVDESS", tmp_path_factory.mktemp("RAVDESS"), speakers=12, seed=0, song=True, progress=False
    )


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
    hparams: Path,
    data_folder: Path,
    output_folder: Path,
    *overrides: str,
    threads: int | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run a recipe as a user would, in a fresh process; fail with its output on error (when ``check``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(
        recipe_command(hparams, data_folder, output_folder, *overrides),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"recipe failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="session")
def trained_ravdess(recipe_runs):
    """Output folder of RAVDESS segments + triplet (S) (what ``make demo`` trains) on the synthetic corpus, and its seconds.

    One trained run shared by the learning, report, resume, export and inference tests.
    """
    proc, folder = recipe_runs.result("ravdess")
    report = json.loads((folder / "test_report.json").read_text())
    print(
        f"\nRAVDESS triplet_seg (tiny wav2vec2, synthetic): test UAR {report['UAR']:.3f}, WA {report['WA']:.3f}, {proc.seconds:.0f} s"
    )
    return {"folder": folder, "seconds": proc.seconds, "report": report}


@pytest.fixture(scope="session")
def healthcall30(tmp_path_factory):
    """A 15-caller synthetic HealthCall30 (9 train, 3 devel, 3 masked test; 16 calls each)."""
    return generate_corpus(
        "HealthCall30",
        tmp_path_factory.mktemp("hc30") / "HealthCall30",
        speakers=15,
        seed=2,
        files_per_speaker=16,
        progress=False,
    )


@pytest.fixture(scope="session")
def hume_corpus(tmp_path_factory):
    """A 12-speaker synthetic Hume-Prosody (7 train, 2 devel, 3 masked test; 18 clips each)."""
    return generate_corpus(
        "Hume-Prosody",
        tmp_path_factory.mktemp("hume") / "Hume-Prosody",
        speakers=12,
        seed=1,
        files_per_speaker=18,
        progress=False,
    )


class RecipeRuns:
    """The suite's recipe runs on two forked workers: name -> (command, output folder); results on demand."""

    def __init__(self, pool):
        self.pool, self.jobs = pool, {}

    def submit(self, name: str, cmd: list[str], folder: Path) -> None:
        self.jobs[name] = (self.pool.submit(run_command, cmd, str(REPO)), folder)

    def result(self, name: str, check: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
        job, folder = self.jobs[name]
        proc = job.result()
        if check and proc.returncode != 0:
            raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
        return proc, folder


@pytest.fixture(scope="session")
def recipe_runs(tmp_path_factory, tiny_models, synthetic_ravdess, registry_corpora, healthcall30, hume_corpus):
    """Every long recipe run of the suite, started at once on two workers with one thread each (the longest first).

    Two one-thread runs side by side use the two cores better than one
    two-thread run after another, and each run is forked from a process that
    imported the libraries once (:mod:`tests.forked`).
    """
    root = tmp_path_factory.mktemp("recipe_runs")
    with recipe_pool(workers=2, threads=1) as pool:
        runs = RecipeRuns(pool)
        ravdess = root / "ravdess_triplet_seg"
        runs.submit(
            "ravdess",
            recipe_command(
                REPO / "recipes/RAVDESS/hparams/triplet_seg.yaml",
                synthetic_ravdess,
                ravdess,
                f"--ssl_hub={tiny_models['wav2vec2']}",
                f"--number_of_epochs={RECIPE_EPOCHS}",
                *RECIPE_OVERRIDES,
            ),
            ravdess,
        )
        for name, (cmd, folder) in learning_commands(root, tiny_models, healthcall30, hume_corpus).items():
            runs.submit(name, cmd, folder)
        runs.submit("msp_podcast_dimensional", *msp_podcast_learning_command(root, tiny_models))
        runs.submit("flea", flea_command(root / "flea", tiny_models, registry_corpora["IEMOCAP"]), root / "flea")
        learning = [
            sys.executable,
            str(REPO / "tests" / "cpt_learning.py"),
            str(registry_corpora["IEMOCAP"]),
            tiny_models["hubert"],
            str(root / "cpt_learning"),
        ]
        runs.submit("cpt_learning", learning, root / "cpt_learning")
        for row in TRAIN_ROWS:
            if "{runs[" not in row["debug_overrides"]:  # rows that fuse other rows' runs wait for them (registry_runs)
                runs.submit(
                    row["hparams"],
                    registry_command(row, tiny_models, registry_corpora, root / "registry"),
                    row_folder(root / "registry", row["hparams"]),
                )
        runs.registry_root = root / "registry"
        yield runs


def flea_command(folder: Path, tiny_models: dict, corpus: Path) -> list[str]:
    """The FLEA chain of one IEMOCAP fold on the synthetic corpus with a tiny HuBERT: every stage, a few updates or one epoch each."""
    finetune = {
        "number_of_epochs": 1,
        "batch_size": 8,
        "lr": 0.002,
        "lr_ssl": 0.001,
        "dataloader_options": {"batch_size": 8, "shuffle": True, "num_workers": 0},
        "valid_dataloader_options": {"batch_size": 8, "num_workers": 0},
        "test_dataloader_options": {"batch_size": 1, "num_workers": 0},
    }
    return [
        sys.executable,
        str(REPO / "recipes/IEMOCAP/train_flea.py"),
        str(REPO / "recipes/IEMOCAP/hparams/flea.yaml"),
        f"--data_folder={corpus}",
        f"--fold_folder={folder}",
        f"--output_folder={folder / 'run'}",
        "--allow_subset=True",
        f"--hubert_hub={tiny_models['hubert']}",
        "--encoder_dim=64",
        "--tapt_layer=2",  # the tiny HuBERT has 3 layers
        "--label_layer=2",
        "--tapt_clusters=8",
        "--label_clusters=4",
        "--tapt_updates=10",
        "--tapt_warmup_updates=2",
        "--cpt_updates=10",
        "--cpt_warmup_updates=2",
        "--checkpoint_every=5",
        "--max_batch_seconds=12",
        "--max_fit_frames=5000",
        "--noprogressbar",
        f"--finetune_overrides={json.dumps(finetune)}",
    ]


def learning_commands(root: Path, tiny_models: dict, healthcall30: Path, hume_corpus: Path) -> dict:
    """The ComParE learning runs (tests/test_compare.py): name -> (command, folder)."""
    hc30, loaders = (
        REPO / "recipes" / "HealthCall30" / "hparams",
        ("--dataloader_options={batch_size: 8, shuffle: True, num_workers: 0}",),
    )
    text = recipe_command(
        hc30 / "text.yaml",
        healthcall30,
        root / "hc30_text",
        "--allow_subset=True",
        "--noprogressbar",
        f"--text_hub={tiny_models['camembert']}",
        "--text_dim=64",
        f"--whisper_hub={tiny_models['whisper']}",
        f"--transcripts_file={healthcall30 / 'transcripts.csv'}",  # a random tiny Whisper transcribes nothing useful
        "--text_pooling=mean",  # a random tiny encoder's [CLS] carries almost nothing; a trained CamemBERT's does
        "--lr=0.01",
        "--number_of_epochs=10",
        *loaders,
        "--valid_dataloader_options={batch_size: 8, num_workers: 0}",
        "--test_dataloader_options={batch_size: 8, num_workers: 0}",
    )
    audio = recipe_command(
        hc30 / "audio.yaml",
        healthcall30,
        root / "hc30_audio",
        f"--ssl_hub={tiny_models['wav2vec2']}",
        "--ssl_layer=last",
        "--number_of_epochs=4",
        *RECIPE_OVERRIDES,
    )
    hume = [
        sys.executable,
        str(REPO / "recipes/Hume-Prosody/run_folds.py"),
        str(REPO / "recipes/Hume-Prosody/hparams/audio.yaml"),
        f"--data_folder={hume_corpus}",
        f"--results_folder={root / 'hume_folds'}",
        f"--ssl_hub={tiny_models['wav2vec2']}",
        "--number_of_epochs=12",
        *RECIPE_OVERRIDES,
    ]
    return {
        "hc30_audio": (audio, root / "hc30_audio"),
        "hume_folds": (hume, root / "hume_folds"),
        "hc30_text": (text, root / "hc30_text"),
    }


def msp_podcast_learning_command(root: Path, tiny_models: dict) -> tuple[list[str], Path]:
    """MSP-Podcast dimensional.yaml on a 12-speaker synthetic release (7 train, 2 held-out Test1 speakers; tests/test_msp_podcast.py)."""
    corpus = generate_corpus(
        "MSP-Podcast", root / "msp_podcast_corpus", speakers=12, seed=1, files_per_speaker=12, progress=False
    )
    folder = root / "msp_podcast_dimensional"
    hparams = REPO / "recipes/MSP-Podcast/hparams/dimensional.yaml"
    overrides = (f"--ssl_hub={tiny_models['wav2vec2']}", "--number_of_epochs=6", *RECIPE_OVERRIDES)
    return recipe_command(hparams, corpus, folder, *overrides), folder


# The recipe registry: every hparams file trained once for one epoch on its synthetic corpus.
REGISTRY = REPO / "recipes" / "registry.csv"
ROWS = list(csv.DictReader(REGISTRY.open(encoding="utf-8")))
# Rows run by train.py; a chain of stages (FLEA's train_flea.py) is run and checked by its own test (flea_command, tests/test_flea.py).
TRAIN_ROWS = [row for row in ROWS if Path(row["train_script"]).name == "train.py"]
# Small corpora: every speaker split the protocol needs, few files each.
SYNTHETIC = {
    "RAVDESS": {"speakers": 6, "repetitions": 1},
    "IEMOCAP": {"speakers": 10},
    "FESC": {"speakers": 9, "utterances_per_emotion": 2},
    "Hume-Prosody": {"speakers": 10, "files_per_speaker": 9},
    "HealthCall30": {"speakers": 10, "files_per_speaker": 8},
    "MSP-IMPROV": {"speakers": 12, "utterances_per_speaker": 6},  # 6: every split of fold 1 holds all four classes
    "MSP-Podcast": {"speakers": 7, "files_per_speaker": 8},  # 2 Train speakers (+3 Unknown segments): all 8 classes
    "Custom": {"speakers": 6},  # 3 folds of 2 speakers, one file per German label each
}
# Code that reads hparams: the shared library and every train.py.
CODE_FILES = [*sorted((REPO / "speechbrain_ext").rglob("*.py")), *sorted((REPO / "recipes").glob("*/train.py"))]


def top_level_keys(yaml_file: Path) -> list[str]:
    return [k for k in YAML(typ="rt").load(yaml_file.read_text(encoding="utf-8")) if not k.startswith("__")]


@pytest.fixture(scope="session")
def registry_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry_corpora")
    return {
        name: generate_corpus(name, root / name, seed=1, progress=False, **options)
        for name, options in SYNTHETIC.items()
    }


def row_folder(root: Path, hparams: str) -> Path:
    """Where the registry fixture trains a row: ``<root>/<corpus>/<method>``."""
    return root / Path(hparams).parent.parent.name / Path(hparams).stem


def debug_overrides(row: dict, tiny_models: dict, root: Path) -> list[str]:
    """A row's debug overrides with the tiny models and, for early fusion, the folders of the runs it fuses."""
    runs = {f"{r['corpus']}/{Path(r['hparams']).stem}": row_folder(root, r["hparams"]) for r in ROWS}
    return shlex.split(
        row["debug_overrides"].format(runs=runs, **{f"tiny_{name}": path for name, path in tiny_models.items()})
    )


def registry_command(row: dict, tiny_models: dict, corpora: dict, root: Path) -> list[str]:
    """The command line of a registry row: the shared test overrides the YAML has, then the row's own."""
    hparams = REPO / row["hparams"]
    keys = top_level_keys(hparams)  # a text recipe has no SSL encoder: pass what the YAML has
    shared = [
        o
        for o in (f"--ssl_hub={tiny_models['wav2vec2']}", *RECIPE_OVERRIDES)
        if o.split("=")[0][2:] in keys or o == "--noprogressbar"
    ]
    return recipe_command(
        hparams,
        corpora[row["corpus"]],
        row_folder(root, row["hparams"]),
        *shared,
        *debug_overrides(row, tiny_models, root),
    )


@pytest.fixture(scope="session")
def registry_runs(recipe_runs, registry_corpora, tiny_models):
    """Every registry row trained once (rows that fuse other runs after them); hparams path -> run info."""
    root = recipe_runs.registry_root
    fusing = [row for row in TRAIN_ROWS if "{runs[" in row["debug_overrides"]]
    runs = {}
    for row in [r for r in TRAIN_ROWS if r not in fusing]:
        proc, folder = recipe_runs.result(row["hparams"], check=False)
        runs[row["hparams"]] = {"folder": folder, "proc": proc, "seconds": proc.seconds}
    for row in fusing:
        recipe_runs.submit(
            row["hparams"], registry_command(row, tiny_models, registry_corpora, root), row_folder(root, row["hparams"])
        )
    for row in fusing:
        proc, folder = recipe_runs.result(row["hparams"], check=False)
        runs[row["hparams"]] = {"folder": folder, "proc": proc, "seconds": proc.seconds}
    print(
        "\nregistry runs (s): "
        + ", ".join(f"{Path(k).parent.parent.name}/{Path(k).stem} {v['seconds']:.0f}" for k, v in runs.items())
    )
    return runs
