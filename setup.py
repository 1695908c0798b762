"""Installs the shared library (speechbrain_ext) and the corpus preparation (data_prep)."""

from pathlib import Path

from setuptools import find_packages, setup

requirements = [line.strip() for line in Path(__file__).with_name("requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]

setup(
    name="speechbrain-paralinguistics",
    version="0.1.0",
    description="SpeechBrain recipes for speech emotion and intent recognition",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8") if Path(__file__).with_name("README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_ext", "speechbrain_ext.*", "data_prep", "data_prep.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={"dev": ["pytest>=8", "ruff>=0.6"]},
    license="Apache-2.0",
)
