"""Files written so that an interrupted run loses nothing: atomic writes, JSON done-markers, one live run per folder."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
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


def missing_local_sources(values: dict, prefix: str = "") -> list[str]:
    """``key: path`` of every ``*_hub`` value (nested ones too) that names a local path which does not exist.

    A value names a local path when :func:`is_local_path` says so or its
    parent folder exists here (``models/hubert`` beside a ``models/`` folder).

    Example
    -------
    >>> missing_local_sources({"ssl_hub": "facebook/wav2vec2-base", "transcribe": {"whisper_hub": "~/no/such/whisper"}})
    ["transcribe.whisper_hub: '~/no/such/whisper'"]
    """
    missing = []
    for key, value in values.items():
        if isinstance(value, dict):
            missing += missing_local_sources(value, f"{prefix}{key}.")
        elif str(key).endswith("_hub") and isinstance(value, str | os.PathLike):
            text = str(value)
            parent = Path(text).expanduser().parent
            local = is_local_path(text) or (str(parent) not in ("", ".") and parent.is_dir())
            if local and not Path(text).expanduser().exists():
                missing.append(f"{prefix}{key}: {text!r}")
    return missing


class FolderInUseError(RuntimeError):
    """Another live process holds a folder's run lock."""


class RunLock:
    """One live run per folder: an exclusive lock on ``<folder>/.run.lock`` that names its holder.

    The lock is a POSIX record lock (``lockf``), so it goes with its process
    and is not inherited by forked loader workers: a run killed with SIGKILL
    leaves the file, whose lock the next run takes over at once (and says so).
    While the holder lives, :meth:`acquire` refuses with the holder's host,
    PID, start time and command. The file is never removed, so two runs can
    never lock two different files of one name. POSIX locks do not exclude
    within one process, so the process also remembers the folders it holds.

    Arguments
    ---------
    folder : str or Path
        The folder to hold (created if missing).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     RunLock(folder).acquire()
    Traceback (most recent call last):
    ...
    speechbrain_ext.utils.fileio.FolderInUseError: ...is in use by another run of this process (pid ...)
    >>> with RunLock(folder) as lock:  # released: taken again
    ...     lock.previous is None
    True
    """

    FILE = ".run.lock"
    _held: set[str] = set()  # folders this process holds

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / self.FILE
        self.handle = None
        self.previous = None  # the holder before us, when it died holding the lock

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`FolderInUseError` naming the live holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if (
            str(self.path.resolve()) in RunLock._held
        ):  # never open a second handle: closing it would drop this process's lock
            raise FolderInUseError(f"{self.path.parent} is in use by another run of this process (pid {os.getpid()})")
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the run's lifetime)
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder(handle)
            handle.close()
            raise FolderInUseError(
                f"{self.path.parent} is in use by another run (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
                f"started {holder.get('started', '?')}): {holder.get('command', '?')}\n"
                "Wait for it to end, stop it, or give this run another output_folder."
            ) from None
        self.previous = self._holder(handle) or None
        handle.seek(0)
        handle.truncate()
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        handle.write(json.dumps(me) + "\n")
        handle.flush()
        self.handle = handle
        RunLock._held.add(str(self.path.resolve()))
        return self

    @staticmethod
    def _holder(handle) -> dict:
        handle.seek(0)
        try:
            return json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            return {}

    def release(self) -> None:
        """Empty the file (a clean end) and unlock it."""
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.close()  # closing drops the lock
            self.handle = None
            RunLock._held.discard(str(self.path.resolve()))

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
