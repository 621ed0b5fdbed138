"""kvmpool's own XML namespace: what kvmpool adds to libvirt's ``<pool>``.

libvirt's schemas reject foreign elements and libvirtd silently drops them, so kvmpool's
additions live in a namespace of their own, the way libvirt's fs and rbd namespaces do:

* URI ``http://kvmpool.org/schemas/storagepool/1.0``, prefix ``kvmpool``, declared on the
  root ``<pool>`` (``<pool type='logical' xmlns:kvmpool='...'>``) only when the pool uses
  an extension, so a pool without extensions is byte for byte what libvirt writes;
* the elements are children of ``<pool>``, at its end, after libvirt's namespace blocks;
* their schema is ``schemas/kvmpool-storagepool.rng`` (see :mod:`kvmpool.xml.rng`).

Elements (``PoolDef`` fields in brackets)::

    <kvmpool:thinpool name='NAME'/>    [thin_pool] logical pools only: the pool's volumes
                                       are thin LVs of the thin pool LV NAME in the pool's
                                       volume group
    <kvmpool:thin provisioned='BYTES' data_used='BYTES'
                  data_percent='12.50' metadata_percent='3.10'/>
                                       [thin] runtime facts of a thin-bound pool, printed
                                       when set and ignored on parse (like <capacity>)

libvirt ignores elements it does not know; inside our own namespace kvmpool is strict
instead: an element or attribute of the kvmpool namespace that kvmpool does not know, or
one in the wrong place, is refused. A misspelt binding must not turn a thin pool
definition silently into a thick one.
"""

from __future__ import annotations

import copy
import math
import re

from lxml import etree

from kvmpool.errors import XmlError
from kvmpool.model import PoolDef, PoolType, ThinUsage
from kvmpool.xml._doc import Element, attr, fail, one_line
from kvmpool.xml._writer import Writer, esc

KVMPOOL_NS = "http://kvmpool.org/schemas/storagepool/1.0"
PREFIX = "kvmpool"

_THINPOOL = f"{{{KVMPOOL_NS}}}thinpool"
_THIN = f"{{{KVMPOOL_NS}}}thin"
_KNOWN = {_THINPOOL: "thinpool", _THIN: "thin"}

# ---------------------------------------------------------------- LVM names

# lvm(8) VALID NAMES (lvm2 2.03): letters, digits and + _ . -, not starting with '-', at
# most 127 characters (NAME_LEN 128 with the NUL); not '.' or '..'; no LV name starts with
# 'snapshot' or 'pvmove' or contains one of the suffixes LVM gives its sub-LVs.
_LV_NAME_RE = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]*")
LV_NAME_MAX = 127
LV_RESERVED_PREFIXES = ("snapshot", "pvmove")
LV_RESERVED_STRINGS = (
    "_cdata", "_cmeta", "_corig", "_iorig", "_mimage", "_mlog", "_pmspare",
    "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
)  # fmt: skip
_LV_HINT = (
    "LVM names use letters, digits and + _ . -, may not start with '-', have at most "
    f"{LV_NAME_MAX} characters and avoid LVM's reserved names (lvm(8), VALID NAMES)"
)


def check_lv_name(name: str, what: str = "thin pool") -> None:
    """Raise ``XmlError`` unless ``name`` is a name LVM accepts for a new LV."""

    def bad(why: str) -> XmlError:
        return XmlError(one_line(f"invalid {what} name '{name}': {why}"), hint=_LV_HINT)

    if not name:
        raise XmlError(f"invalid {what} name: it is empty", hint=_LV_HINT)
    if len(name) > LV_NAME_MAX:
        raise bad(f"longer than {LV_NAME_MAX} characters")
    if not _LV_NAME_RE.fullmatch(name):
        if name.startswith("-"):
            raise bad("LVM names may not start with '-'")
        raise bad("LVM names use only letters, digits and + _ . -")
    if name in (".", ".."):
        raise bad("reserved by LVM")
    for prefix in LV_RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise bad(f"LVM reserves names starting with '{prefix}'")
    for part in LV_RESERVED_STRINGS:
        if part in name:
            raise bad(f"LVM reserves names containing '{part}'")


# ---------------------------------------------------------------- parse


def _qname(node: Element) -> str:
    tag = str(node.tag)
    local = tag.rsplit("}", 1)[-1]
    return f"{PREFIX}:{local}" if tag.startswith(f"{{{KVMPOOL_NS}}}") else local


def _check_placement(root: Element) -> None:
    """Refuse kvmpool-namespace nodes kvmpool does not know or that sit in the wrong place."""
    ours = f"{{{KVMPOOL_NS}}}"
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue  # comments, processing instructions
        for key in node.attrib:
            if str(key).startswith(ours):
                local = str(key)[len(ours) :]
                raise fail(
                    f"unknown attribute '{PREFIX}:{local}' in element '{_qname(node)}' "
                    f"(namespace {KVMPOOL_NS})"
                )
        if not node.tag.startswith(ours):
            continue
        if node.tag not in _KNOWN:
            raise fail(f"unknown element <{_qname(node)}> (namespace {KVMPOOL_NS})")
        if node.getparent() is not root:
            parent = node.getparent()
            where = _qname(parent) if parent is not None else "?"
            raise fail(f"element <{_qname(node)}> belongs in <pool>, not in <{where}>")


def parse_thin_pool(root: Element, pool_type: PoolType) -> str | None:
    """The ``<kvmpool:thinpool name=...>`` binding of ``root`` (a ``<pool>``), if any.

    ``<kvmpool:thin>`` is a runtime fact and is ignored, like ``<capacity>``.
    """
    _check_placement(root)
    nodes = [n for n in root if n.tag == _THINPOOL]
    if not nodes:
        return None
    if len(nodes) > 1:
        raise fail(f"more than one <{PREFIX}:thinpool> element")
    if pool_type is not PoolType.LOGICAL:
        raise fail(
            f"<{PREFIX}:thinpool> is only valid for 'logical' pools, "
            f"not for pool type '{pool_type.value}'"
        )
    name = attr(nodes[0], "name")
    if name is None:
        raise fail(f"Missing required attribute 'name' in element '{PREFIX}:thinpool'")
    check_lv_name(name)
    return name


# ---------------------------------------------------------------- format


def _percent(value: float, what: str) -> str:
    if isinstance(value, bool) or not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise fail(f"invalid thin pool {what} {value!r}: expected a percentage from 0 to 100")
    return f"{value:.2f}"


def _bytes(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"invalid thin pool {what} {value!r}: expected a byte count")
    return str(value)


def _check(pool: PoolDef) -> bool:
    """True when ``pool`` uses an extension; ``XmlError`` for what we would not parse back."""
    if pool.thin_pool is None:
        if pool.thin is not None:
            raise fail("thin pool usage given for a pool that is not bound to a thin pool")
        return False
    if pool.type is not PoolType.LOGICAL:
        raise fail(
            f"<{PREFIX}:thinpool> is only valid for 'logical' pools, "
            f"not for pool type '{pool.type.value}'"
        )
    check_lv_name(pool.thin_pool)
    return True


def namespace_decl(pool: PoolDef) -> str:
    """The ``xmlns:kvmpool`` declaration for ``<pool>``: empty without extensions."""
    return f" xmlns:{PREFIX}='{KVMPOOL_NS}'" if _check(pool) else ""


def format_extensions(w: Writer, pool: PoolDef) -> None:
    """Write the kvmpool elements (the last children of ``<pool>``)."""
    if not _check(pool):
        return
    assert pool.thin_pool is not None
    w.line(f"<{PREFIX}:thinpool name='{esc(pool.thin_pool)}'/>")
    thin: ThinUsage | None = pool.thin
    if thin is not None:
        w.line(
            f"<{PREFIX}:thin provisioned='{_bytes(thin.provisioned, 'provisioned size')}' "
            f"data_used='{_bytes(thin.data_used, 'data used')}' "
            f"data_percent='{_percent(thin.data_percent, 'data percent')}' "
            f"metadata_percent='{_percent(thin.metadata_percent, 'metadata percent')}'/>"
        )


# ---------------------------------------------------------------- validation helpers


def uses_namespace(root: Element) -> bool:
    """True when ``root``'s document declares or uses the kvmpool namespace anywhere."""
    ours = f"{{{KVMPOOL_NS}}}"
    for node in root.iter():
        if KVMPOOL_NS in node.nsmap.values():
            return True
        if isinstance(node.tag, str) and node.tag.startswith(ours):
            return True
        if any(str(key).startswith(ours) for key in node.attrib):
            return True
    return False


def without_namespace(root: Element) -> Element:
    """A copy of ``root`` with every kvmpool-namespace node and declaration removed."""
    ours = f"{{{KVMPOOL_NS}}}"
    root = copy.deepcopy(root)
    for node in list(root.iter()):
        if not isinstance(node.tag, str):
            continue
        for key in [k for k in node.attrib if str(k).startswith(ours)]:
            del node.attrib[key]
    doomed = [n for n in root.iter() if isinstance(n.tag, str) and n.tag.startswith(ours)]
    for node in doomed:
        parent = node.getparent()
        if parent is None:
            continue  # the root is a <pool>, never ours
        if node.tail:
            prev = node.getprevious()
            if prev is not None:
                prev.tail = (prev.tail or "") + node.tail
            else:
                parent.text = (parent.text or "") + node.tail
        parent.remove(node)
    etree.cleanup_namespaces(root)
    return root
