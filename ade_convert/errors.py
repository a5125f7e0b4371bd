"""The converter's error: a workflow it cannot read (neither format, a cycle, a link to a missing node).

Inside the pack it is one of the pack's :class:`AnimDiffError` family; run on its own (the command line, any
Python 3.10+ without ComfyUI) it is a ``ValueError`` with the same ``AnimDiff:`` prefix.
"""

from __future__ import annotations

try:
    from ..errors import AnimDiffError as _Base
except ImportError:  # imported as the top-level package ``ade_convert`` (the command line)
    class _Base(ValueError):
        def __init__(self, message: str):
            super().__init__(message if message.startswith("AnimDiff: ") else "AnimDiff: " + message)


class ConvertError(_Base):
    """A workflow that cannot be converted at all; the message names the file or node and what is wrong."""
