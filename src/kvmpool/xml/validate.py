"""Validation against libvirt's own RelaxNG schemas (``/usr/share/libvirt/schemas``).

The schemas come with the Debian package ``libvirt0``. kvmpool's one deliberate
deviation: a volume's ``<format type=...>`` (in ``<target>`` or ``<backingStore>``) may be
``vhdx`` or ``parallels``, names libvirt lacks. :func:`validate` checks such a document by
validating a copy with those two names replaced by ``raw``; nothing else is relaxed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Literal

from lxml import etree

from kvmpool.errors import ToolMissing
from kvmpool.xml._doc import fail, parse_document
from kvmpool.xml.types import SCHEMA_DEVIATIONS

SCHEMA_DIR = Path("/usr/share/libvirt/schemas")
_FILES = {"pool": "storagepool.rng", "volume": "storagevol.rng"}


@functools.cache
def _schema(path: Path) -> etree.RelaxNG:
    # Compiled schemas are immutable; the memo only saves recompiling the same file.
    return etree.RelaxNG(etree.parse(str(path)))


def schema_path(kind: Literal["pool", "volume"], schema_dir: Path = SCHEMA_DIR) -> Path:
    path = schema_dir / _FILES[kind]
    if not path.is_file():
        raise ToolMissing(
            f"libvirt's RelaxNG schema {path} is missing (Debian package libvirt0)",
            hint="install the Debian package libvirt0 (apt-get install libvirt0)",
        )
    return path


def _formats(root: etree._Element) -> list[etree._Element]:
    found = root.xpath("./target/format | ./backingStore/format")
    assert isinstance(found, list)
    return [n for n in found if isinstance(n, etree._Element)]


def _without_deviations(root: etree._Element) -> etree._Element:
    """A copy with ``vhdx`` / ``parallels`` volume formats read as ``raw``, if any."""
    if not any(f.get("type") in SCHEMA_DEVIATIONS for f in _formats(root)):
        return root
    root = copy.deepcopy(root)
    for node in _formats(root):
        if node.get("type") in SCHEMA_DEVIATIONS:
            node.set("type", "raw")
    return root


def validate(
    doc: str | bytes, kind: Literal["pool", "volume"], *, schema_dir: Path = SCHEMA_DIR
) -> None:
    """Raise ``XmlError`` with the first schema error unless ``doc`` is valid.

    Raises ``ToolMissing`` when the schemas are not installed.
    """
    schema = _schema(schema_path(kind, schema_dir))
    root = parse_document(doc, kind)
    if kind == "volume":
        root = _without_deviations(root)
    if schema.validate(root):
        return
    entries = list(schema.error_log)
    first = entries[0] if entries else None
    detail = f"{first.message} at line {first.line}" if first is not None else "invalid document"
    raise fail(f"XML document failed to validate against schema {_FILES[kind]}: {detail}")
