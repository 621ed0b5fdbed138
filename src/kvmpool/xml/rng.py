"""Validation against libvirt's own RelaxNG schemas (``/usr/share/libvirt/schemas``).

The schemas come with the Debian package ``libvirt0``. kvmpool's one deliberate
deviation: a volume's ``<format type=...>`` (in ``<target>`` or ``<backingStore>``) may be
``vhdx`` or ``parallels``, names libvirt lacks. :func:`validate` checks such a document by
validating a copy with those two names replaced by ``raw``. Likewise an fs pool may be
``btrfs`` (libvirt lists no such format): a copy with ``auto`` there is validated. Nothing
else is relaxed.

kvmpool's own namespace (``http://kvmpool.org/schemas/storagepool/1.0``, see
:mod:`kvmpool.xml.ext`) has a schema of its own, shipped in the package:
``kvmpool/xml/schemas/kvmpool-storagepool.rng``. A ``<pool>`` that declares or uses that
namespace is checked twice, and must pass both:

1. libvirt's ``storagepool.rng`` on a copy with every kvmpool-namespace element and
   attribute and the ``xmlns:kvmpool`` declaration removed (what libvirtd would keep);
2. kvmpool's schema on the document as given. It judges only the kvmpool parts: which
   kvmpool elements exist, their attributes and values, that they are children of
   ``<pool>`` and nowhere else, that ``<kvmpool:thinpool>`` is only in a
   ``type='logical'`` pool and ``<kvmpool:thin>`` only after it, and that no kvmpool
   attribute appears anywhere. Like libvirt's schema it leaves the order of ``<pool>``'s
   children free (``format_pool`` writes ours last). It accepts everything outside the
   namespace as it stands; that is step 1's job.

A pool without the namespace is validated exactly as before, against libvirt's schema
alone. :func:`kvmpool_schema` compiles kvmpool's schema (a test keeps it compiling).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Literal

from lxml import etree

from kvmpool.errors import ToolMissing
from kvmpool.xml._doc import fail, parse_document
from kvmpool.xml.ext import uses_namespace, without_namespace
from kvmpool.xml.types import POOL_SCHEMA_DEVIATIONS, SCHEMA_DEVIATIONS

SCHEMA_DIR = Path("/usr/share/libvirt/schemas")
_FILES = {"pool": "storagepool.rng", "volume": "storagevol.rng"}
#: kvmpool's schema for its own pool namespace, shipped as package data.
KVMPOOL_SCHEMA = Path(__file__).resolve().parent / "schemas" / "kvmpool-storagepool.rng"


@functools.cache
def _schema(path: Path) -> etree.RelaxNG:
    # Compiled schemas are immutable; the memo only saves recompiling the same file.
    return etree.RelaxNG(etree.parse(str(path)))


def kvmpool_schema(path: Path = KVMPOOL_SCHEMA) -> etree.RelaxNG:
    """kvmpool's compiled RelaxNG schema for its pool namespace.

    Raises ``XmlError`` when the file is missing or does not compile (a packaging bug).
    """
    try:
        return _schema(path)
    except (OSError, etree.XMLSyntaxError, etree.RelaxNGParseError) as err:
        raise fail(f"kvmpool's RelaxNG schema {path} does not load: {err}") from None


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


def _pool_without_deviations(root: etree._Element) -> etree._Element:
    """A copy with an fs pool's ``btrfs`` source format read as ``auto``, if any."""
    fmt = root.find("./source/format")
    if root.get("type") != "fs" or fmt is None or fmt.get("type") not in POOL_SCHEMA_DEVIATIONS:
        return root
    root = copy.deepcopy(root)
    node = root.find("./source/format")
    assert node is not None
    node.set("type", "auto")
    return root


def validate(
    doc: str | bytes, kind: Literal["pool", "volume"], *, schema_dir: Path = SCHEMA_DIR
) -> None:
    """Raise ``XmlError`` with the first schema error unless ``doc`` is valid.

    Raises ``ToolMissing`` when the schemas are not installed.
    """
    schema = _schema(schema_path(kind, schema_dir))
    root = parse_document(doc, kind)
    if kind == "pool":
        root = _pool_without_deviations(root)
    if kind == "volume":
        _check(schema, _without_deviations(root), _FILES[kind])
    elif uses_namespace(root):
        _check(schema, without_namespace(root), _FILES[kind])
        _check(kvmpool_schema(), root, KVMPOOL_SCHEMA.name, every_error=True)
    else:
        _check(schema, root, _FILES[kind])


def _check(
    schema: etree.RelaxNG, root: etree._Element, name: str, *, every_error: bool = False
) -> None:
    """Raise ``XmlError`` naming the first schema error (or, with ``every_error``, all).

    libxml2 reports the cause of a failure under an ``<interleave>`` (kvmpool's schema)
    in one entry and a generic "failed to validate content" in another: both are kept.
    """
    if schema.validate(root):
        return
    details: list[str] = []
    for entry in schema.error_log:
        text = f"{entry.message} at line {entry.line}" if entry.line > 0 else entry.message
        if text not in details:
            details.append(text)
        if not every_error:
            break
    detail = "; ".join(details) or "invalid document"
    raise fail(f"XML document failed to validate against schema {name}: {detail}")
