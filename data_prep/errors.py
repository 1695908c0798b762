"""The errors a corpus preparation raises; each message names the file and the problem."""

from __future__ import annotations

import os


class PreparationError(RuntimeError):
    """A corpus cannot be prepared as asked; the message says which file and why."""


class AudioFileError(PreparationError):
    """An audio file is unreadable, empty or otherwise unusable."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SpeakerLeakageError(PreparationError):
    """A speaker appears in more than one split of a fold."""
