"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit code 2; anything else is our bug (exit 1).
Every package raises it, so it lives at the bottom of the dependency stack.
"""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad input, reported as `SOURCE: FIELD: REASON` so a user knows which file and key to fix."""

    def __init__(self, source: str | PathLike | None, field: str | None, reason: str) -> None:
        self.source = None if source is None else str(source)
        self.field = field
        self.reason = reason
        parts = [p for p in (self.source, field) if p]
        super().__init__(": ".join([*parts, reason]))
