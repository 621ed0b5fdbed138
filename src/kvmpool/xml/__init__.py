"""libvirt-compatible ``<pool>`` and ``<volume>`` XML <-> ``kvmpool.model`` values.

Public API (other modules call exactly these)::

    parse_pool(text) -> PoolDef
    format_pool(pool) -> str
    parse_volume(text, pool, *, capacity_optional=False) -> VolumeDef
    format_volume(vol, pool_type) -> str
    format_sources(sources, pool_type) -> str
    validate(doc, kind) -> None          # libvirt's RelaxNG schemas

Parsing follows libvirt 9.0's ``virStoragePoolDefParse`` / ``virStorageVolDefParse``
(same defaults, same checks, libvirt's error wording, one line each); formatting is byte
for byte ``virStoragePoolDefFormat`` / ``virStorageVolDefFormat``. libvirt's own
round-trip corpus (tests/data/libvirt-xml) is the proof.

Every document is parsed hardened (``_doc.parse_document``): no entity resolution, no
network, no DTD loading, no huge trees; a DOCTYPE that declares entities is refused.

Where kvmpool deliberately differs from libvirt:

* Volume formats: libvirt's names plus ``luks`` (in libvirt's schema, not in its 9.0
  parser) and, where libvirt has no name, qemu's ``vhdx`` and ``parallels``. Those two
  leave libvirt's schema: the truth about an image matters more than the schema (libvirt
  itself reports a vhdx file as raw). ``validate`` accepts exactly these two deviations.
* Only one ``<secret>`` per ``<encryption>`` (libvirt's schema allows no more either).
* Every text and attribute value is XML-escaped, including the few libvirt prints raw
  (an adapter name, a secret type); for well-formed input the bytes are the same.
* A ``PoolDef`` built in code with ``source.format`` None prints the type's default format.
"""

from kvmpool.xml.pool import format_pool, format_sources, parse_pool
from kvmpool.xml.validate import validate
from kvmpool.xml.volume import format_volume, parse_volume

__all__ = [
    "format_pool",
    "format_sources",
    "format_volume",
    "parse_pool",
    "parse_volume",
    "validate",
]
