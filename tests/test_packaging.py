"""The library stands alone: an installed package (no checkout) carries the recipes the demo runs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from speechbrain_ext.serving import demo

REPO = Path(__file__).resolve().parents[1]
SHARE = "share/speechbrain-paralinguistics/recipes"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    import shutil

    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.py", "requirements.txt", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in (
        "speechbrain_ext",
        "data_prep",
        "recipes",
    ):  # a copy, so the build leaves no build/ folder in the checkout
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(out.glob("*.whl"))


def test_wheel_carries_every_recipe_and_the_library(wheel, tmp_path, monkeypatch):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = sorted(n.split(f"{SHARE}/", 1)[1] for n in names if f"/data/{SHARE}/" in n)
        on_disk = sorted(str(p.relative_to(REPO / "recipes")) for p in (REPO / "recipes").glob("*/hparams/*.yaml"))
        assert set(on_disk) <= set(data) and "registry.csv" in data and "RAVDESS/train.py" in data
        assert {"speechbrain_ext/utils/fileio.py", "speechbrain_ext/training/brains.py", "data_prep/ravdess.py"} <= set(
            names
        )
        archive.extractall(tmp_path / "unpacked")
    installed = next((tmp_path / "unpacked").glob(f"*.data/data/{SHARE}"))
    # without a checkout, the demo finds the installed recipes
    monkeypatch.setattr(demo, "REPO", tmp_path / "no_checkout")
    monkeypatch.setattr(demo, "INSTALLED_RECIPES", installed)
    assert demo.recipes_folder() == installed
    monkeypatch.setattr(demo, "INSTALLED_RECIPES", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no recipes found"):
        demo.recipes_folder()


def test_the_demo_finds_the_recipes_of_a_checkout():
    """``make demo`` runs from a checkout: the demo trains the checkout's RAVDESS recipe."""
    checkout = Path(__file__).resolve().parents[1]
    assert demo.recipes_folder() == checkout / "recipes"
    assert (demo.recipes_folder() / "RAVDESS" / "hparams" / "triplet_seg.yaml").is_file()
