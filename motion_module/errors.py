"""One error type for every bad motion-model file, always naming the file."""

from __future__ import annotations


class MotionModelFileError(ValueError):
    """A file that cannot be used where it was given; the message names it and says why."""

    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem
