"""Installs the shared library (speechbrain_ext) and the corpus preparation (data_prep)."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
# The recipes travel with an installed package (share/speechbrain-paralinguistics/recipes), so the demo runs without a checkout.
RECIPE_FILES = ("train.py", "run_folds.py", "README.md", "hparams/*.yaml")
recipe_data = {}
for pattern in RECIPE_FILES:
    for path in sorted(ROOT.glob(f"recipes/*/{pattern}")):
        recipe_data.setdefault(
            str(Path("share/speechbrain-paralinguistics") / path.parent.relative_to(ROOT)), []
        ).append(str(path.relative_to(ROOT)))
recipe_data.setdefault("share/speechbrain-paralinguistics/recipes", []).append("recipes/registry.csv")

requirements = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="speechbrain-paralinguistics",
    version="0.1.0",
    description="SpeechBrain recipes for speech emotion and intent recognition",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8")
    if Path(__file__).with_name("README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_ext", "speechbrain_ext.*", "data_prep", "data_prep.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    data_files=sorted(recipe_data.items()),
    extras_require={"dev": ["pytest>=8", "ruff>=0.6"]},
    license="Apache-2.0",
)
