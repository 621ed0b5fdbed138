"""A tiny indenting line buffer that writes XML the way libvirt's virBuffer does.

Single-quoted attributes, two spaces per level, one element per line, ``\\n`` after every
line. :func:`esc` escapes like ``virBufferEscapeString``: ``< > & ' "`` become entities
and control characters that XML 1.0 cannot carry are dropped.
"""

from __future__ import annotations

import re

_ESCAPES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;"}
_NEEDS = re.compile(r"[<>&'\"\x00-\x08\x0b\x0c\x0e-\x1f]")


def esc(text: str) -> str:
    return _NEEDS.sub(lambda m: _ESCAPES.get(m.group(0), ""), text)


class Writer:
    def __init__(self, indent: int = 0) -> None:
        self._lines: list[str] = []
        self._indent = indent

    def line(self, text: str) -> None:
        self._lines.append(" " * self._indent + text + "\n")

    def open(self, text: str) -> None:
        self.line(text)
        self._indent += 2

    def close(self, text: str) -> None:
        self._indent -= 2
        self.line(text)

    def text(self) -> str:
        return "".join(self._lines)
