"""libvirt-compatible ``<pool>`` and ``<volume>`` XML <-> ``kvmpool.model`` values.

Public API (other modules call exactly these)::

    parse_pool(text: str | bytes) -> PoolDef
    format_pool(pool: PoolDef) -> str
    parse_volume(text: str | bytes, pool: PoolDef, *, capacity_optional: bool = False)
        -> VolumeDef
    format_volume(vol: VolumeDef, pool_type: PoolType) -> str
    format_sources(sources: Sequence[PoolSource], pool_type: PoolType) -> str
    validate(doc: str | bytes, kind: Literal["pool", "volume"], *, schema_dir: Path = ...)
        -> None

Errors: ``kvmpool.errors.XmlError`` (an ``InvalidArgument``), one line each;
``validate`` raises ``ToolMissing`` when libvirt's schemas are not installed.

Layout: ``_doc`` (hardened parser, C-style number readers), ``_writer`` (libvirt's
output conventions), ``types`` (the per-pool-type table), ``_common`` (paths, uuids,
permissions, secrets), ``source`` (a pool's ``<source>``), ``pool``, ``volume``,
``ext`` (kvmpool's own namespace), ``validate``; ``schemas/kvmpool-storagepool.rng``
(kvmpool's RelaxNG schema for its namespace, package data).

Parsing follows libvirt 9.0's ``virStoragePoolDefParse`` / ``virStorageVolDefParse``
(same defaults, same checks, libvirt's error wording, one line each); formatting is byte
for byte ``virStoragePoolDefFormat`` / ``virStorageVolDefFormat``. libvirt's own
round-trip corpus (tests/data/libvirt-xml) is the proof.

Every document is parsed hardened (``_doc.parse_document``): no entity resolution, no
network, no DTD loading, no huge trees; a DOCTYPE that declares entities is refused.

Where kvmpool deliberately differs from libvirt:

* kvmpool's own namespace ``http://kvmpool.org/schemas/storagepool/1.0`` (prefix
  ``kvmpool``, declared on ``<pool>``, elements last in ``<pool>``; see ``ext``):
  ``<kvmpool:thinpool name='LV'/>`` (``PoolDef.thin_pool``, logical pools only) and the
  runtime ``<kvmpool:thin provisioned=... data_used=... data_percent=...
  metadata_percent=.../>`` (``PoolDef.thin``, printed, never parsed). A pool without
  them is printed exactly as libvirt prints it, with no namespace declaration. Unlike
  libvirt with unknown elements, unknown or misplaced kvmpool-namespace nodes are refused.
  ``validate`` checks such a pool against libvirt's schema (with our namespace removed)
  and against kvmpool's.
* Volume formats: libvirt's names plus ``luks`` (in libvirt's schema, not in its 9.0
  parser) and, where libvirt has no name, qemu's ``vhdx`` and ``parallels``. Those two
  leave libvirt's schema: the truth about an image matters more than the schema (libvirt
  itself reports a vhdx file as raw). ``validate`` accepts exactly these two deviations.
* Only one ``<secret>`` per ``<encryption>`` (libvirt's schema allows no more either).
* Every text and attribute value is XML-escaped, including the few libvirt prints raw
  (an adapter name, a secret type); for well-formed input the bytes are the same.
* A ``PoolDef`` built in code with ``source.format`` None prints the type's default format.

libvirt behaviour kept on purpose (so round trips match libvirt): ``<nocow/>`` is read but
never written; input extents, timestamps and ``<physical>`` are not read; ``<refresh>``
is accepted for any pool type although libvirt's schema allows it only for rbd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from kvmpool.xml._writer import esc as escape
from kvmpool.xml.pool import format_pool, format_sources, parse_pool
from kvmpool.xml.volume import format_volume, parse_volume

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "escape",
    "format_pool",
    "format_sources",
    "format_volume",
    "parse_pool",
    "parse_volume",
    "validate",
]


def validate(doc: str | bytes, kind: Literal["pool", "volume"], *,
             schema_dir: Path | None = None) -> None:
    """Check ``doc`` against libvirt's RelaxNG schema (and kvmpool's): see kvmpool.xml.rng.

    The schema code is imported on first use: most commands never validate."""
    from kvmpool.xml import rng

    if schema_dir is None:
        rng.validate(doc, kind)
    else:
        rng.validate(doc, kind, schema_dir=schema_dir)

