"""Files written so that an interrupted run loses nothing: atomic writes and JSON done-markers."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    An interrupted write leaves the previous file (or none), never half a file.

    Arguments
    ---------
    path : str or PathLike
        Destination file; its folder is created if needed.
    text : str
        Content.

    Example
    -------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write_text(target, "hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (see :func:`atomic_write_text`).

    Example
    -------
    >>> import tempfile, pathlib, json
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> atomic_write_json(target, {"u1": {"emo": "sad"}})
    >>> json.loads(target.read_text())
    {'u1': {'emo': 'sad'}}
    """
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_done_marker(path: str | os.PathLike, info: dict) -> None:
    """Mark a finished stage or run with a small JSON file (written atomically).

    Example
    -------
    >>> import tempfile, pathlib
    >>> marker = pathlib.Path(tempfile.mkdtemp()) / "done.json"
    >>> read_done_marker(marker) is None
    True
    >>> write_done_marker(marker, {"epochs": 3})
    >>> read_done_marker(marker)
    {'epochs': 3}
    """
    atomic_write_json(path, info)


def read_done_marker(path: str | os.PathLike) -> dict | None:
    """The content of a done-marker, or None when the stage has not finished."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def is_local_path(value) -> bool:
    """Whether a model source names a folder of this machine rather than a hub id (``org/name``).

    Example
    -------
    >>> is_local_path("facebook/hubert-base-ls960"), is_local_path("/data/my_hubert"), is_local_path("./models/x")
    (False, True, True)
    """
    text = str(value)
    return text.startswith(("/", "./", "../", "~")) or text.count("/") > 1 or Path(text).is_dir()
