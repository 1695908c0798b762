"""The files that make an exported model folder a Hugging Face Space (``hub export --space``).

The Space runs the demo page (:mod:`speechbrain_ext.serving.app`, copied as
``app.py``; it loads the folder's ``custom_interface.py`` through
``foreign_class``) with the packages of ``requirements.txt``, pinned to the
versions the page's browser test ran with (tests/test_app.py checks them
against the installed ones). The model card's front matter gets the Space keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from speechbrain_ext.utils.fileio import atomic_write_text

APP_SOURCE = Path(__file__).resolve().parents[1] / "app.py"  # copied, not imported: no Gradio setup on export

SPACE_REQUIREMENTS = {
    "torch": "2.11.0",
    "torchaudio": "2.11.0",
    "speechbrain": "1.1.2",
    "transformers": "5.25.0",
    "gradio": "6.31.0",
    "matplotlib": "3.11.2",
    "soundfile": "0.14.0",
}


def write_space(folder: str | os.PathLike) -> list[Path]:
    """Write ``app.py`` and ``requirements.txt`` into an exported folder and mark its card as a Gradio Space.

    Arguments
    ---------
    folder : str or PathLike
        An exported model folder (``hub export --out``).

    Returns
    -------
    list of Path
        The files written.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "README.md").write_text("---\\nlibrary_name: speechbrain\\n---\\n# Model\\n")
    >>> [p.name for p in write_space(folder)]
    ['app.py', 'requirements.txt', 'README.md']
    >>> (folder / "README.md").read_text().splitlines()[:4]
    ['---', 'sdk: gradio', 'sdk_version: 6.31.0', 'app_file: app.py']
    """
    folder = Path(folder)
    atomic_write_text(folder / "app.py", APP_SOURCE.read_text(encoding="utf-8"))
    atomic_write_text(folder / "requirements.txt", "".join(f"{k}=={v}\n" for k, v in SPACE_REQUIREMENTS.items()))
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else "---\n---\n"
    if text.startswith("---\n") and "\nsdk:" not in text.split("\n---", 1)[0]:
        keys = f"sdk: gradio\nsdk_version: {SPACE_REQUIREMENTS['gradio']}\napp_file: app.py\n"
        atomic_write_text(card, "---\n" + keys + text[len("---\n") :])
    return [folder / "app.py", folder / "requirements.txt", card]
