"""Hardened reading of untrusted XML, and libvirt's rules for reading values out of it.

Every document goes through :func:`parse_document`: lxml with entity resolution, network
access, DTD loading and huge trees all off. A document that declares entities is refused
outright (no billion laughs, no XXE), and a malformed one becomes a one-line
``XmlError`` that names the line.

The value readers follow libvirt's XPath helpers: ``string(./x)`` that is empty counts as
absent, numbers are read like ``strtol`` / ``strtoull`` with libvirt's extra checks.
"""

from __future__ import annotations

import re
from typing import Any, cast

from lxml import etree

from kvmpool.errors import InvalidArgument, XmlError
from kvmpool.units import scale

Element = etree._Element


def one_line(message: str) -> str:
    """Errors are one line: control characters in user text become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", message)


def fail(message: str) -> XmlError:
    return XmlError(one_line(message))


def _syntax_error(err: etree.XMLSyntaxError) -> XmlError:
    # err.error_log can hold earlier, unrelated errors of this thread: use msg / lineno.
    message = re.sub(r", line \d+, column \d+$", "", str(err.msg or "").strip())
    return fail(f"XML error: {message} at line {err.lineno}")


def parse_document(text: str | bytes, root: str) -> Element:
    """Parse ``text`` safely and return its root element, which must be ``<root>``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    # A str was decoded already: whatever its declaration says, its bytes are now UTF-8.
    encoding = "utf-8" if isinstance(text, str) else None
    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        tree = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError as err:
        raise _syntax_error(err) from None
    dtd = tree.docinfo.internalDTD
    if dtd is not None and any(True for _ in cast(Any, dtd).iterentities()):
        raise fail("XML error: entity declarations are not allowed (DOCTYPE with <!ENTITY>)")
    top = tree.getroot()
    if any(isinstance(node, etree._Entity) for node in top.iter()):
        raise fail("XML error: entity references are not allowed")
    name = etree.QName(top).localname
    if name != root:
        raise fail(f"unexpected root element <{name}>, expecting <{root}>")
    return top


def xstring(node: Element, path: str) -> str | None:
    """libvirt's ``virXPathString("string(path)")``: the text, or None when empty."""
    value = node.xpath(f"string({path})")
    assert isinstance(value, str)
    return value or None


def xnode(node: Element, path: str, namespaces: dict[str, str] | None = None) -> Element | None:
    found = xnodes(node, path, namespaces)
    return found[0] if found else None


def xnodes(node: Element, path: str, namespaces: dict[str, str] | None = None) -> list[Element]:
    found = node.xpath(path, namespaces=namespaces) if namespaces else node.xpath(path)
    assert isinstance(found, list)
    return [n for n in found if isinstance(n, etree._Element)]


def attr(node: Element, name: str) -> str | None:
    """``virXMLPropString``: the attribute value (possibly empty), or None when absent."""
    return node.get(name)


# ---------------------------------------------------------------- numbers, C style

_C_SPACE = " \t\n\v\f\r"
_INT = re.compile(r"[+-]?[0-9]+\Z")
_HEX = re.compile(r"[+-]?0[xX][0-9a-fA-F]+\Z")
_OCT = re.compile(r"[+-]?0[0-7]*\Z")


def c_int(text: str, base: int) -> int | None:
    """``strtol`` that must consume the whole string (leading blanks allowed)."""
    s = text.lstrip(_C_SPACE)
    if base == 10:
        return int(s, 10) if _INT.match(s) else None
    if base == 8:
        return int(s, 8) if re.match(r"[+-]?[0-7]+\Z", s) else None
    # base 0: 0x.. hex, 0.. octal, else decimal
    if _HEX.match(s):
        return int(s, 16)
    if _OCT.match(s):
        return int(s, 8)
    if re.match(r"[+-]?[1-9][0-9]*\Z", s):
        return int(s, 10)
    return None


def c_uint(text: str, base: int = 10) -> int | None:
    """``virStrToLong_uip``-like: an unsigned value, no minus sign."""
    if "-" in text:
        return None
    return c_int(text, base)


def prop_uint(
    node: Element, name: str, *, base: int = 10, required: bool = False, limit: int = 2**32 - 1
) -> int | None:
    """``virXMLPropUInt``: an unsigned attribute, with libvirt's error wording."""
    raw = node.get(name)
    tag = etree.QName(node).localname
    if raw is None:
        if required:
            raise fail(f"Missing required attribute '{name}' in element '{tag}'")
        return None
    value = c_uint(raw, base)
    if value is None or value > limit:
        raise fail(
            f"Invalid value for attribute '{name}' in element '{tag}': '{raw}'. "
            "Expected non-negative integer value"
        )
    return value


def prop_int(node: Element, name: str) -> int | None:
    """``virXMLPropInt`` (base 10)."""
    raw = node.get(name)
    if raw is None:
        return None
    value = c_int(raw, 10)
    if value is None or not -(2**31) <= value < 2**31:
        tag = etree.QName(node).localname
        raise fail(
            f"Invalid value for attribute '{name}' in element '{tag}': '{raw}'. "
            "Expected integer value"
        )
    return value


def prop_yes_no(node: Element, name: str) -> bool | None:
    """``virXMLPropTristateBool``: 'yes' / 'no' / absent."""
    raw = node.get(name)
    if raw is None:
        return None
    if raw in ("yes", "no"):
        return raw == "yes"
    tag = etree.QName(node).localname
    raise fail(
        f"Invalid value for attribute '{name}' in element '{tag}': '{raw}'. "
        "Expected one of 'yes', 'no'"
    )


def scaled(value_text: str, unit: str | None, *, what: str, limit: int) -> int:
    """A size with an optional ``unit`` attribute, as ``virStorageSize`` reads it."""
    s = value_text.lstrip(_C_SPACE)
    if "-" in s or not re.match(r"\+?[0-9]+\Z", s):
        raise fail(f"malformed {what} element")
    try:
        return scale(int(s), unit, limit=limit)
    except InvalidArgument as err:
        raise fail(err.message) from None
