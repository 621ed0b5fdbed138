"""Pieces shared by ``<pool>`` and ``<volume>``: paths, uuids, permissions, secrets."""

from __future__ import annotations

from kvmpool.model import Permissions, SecretRef
from kvmpool.xml._doc import Element, attr, c_int, fail, xnode, xstring
from kvmpool.xml._writer import Writer, esc

_UINT_MAX = 2**32 - 1


def sanitize_path(path: str) -> str:
    """libvirt's ``virFileSanitizePath``: collapse ``//``, drop a trailing ``/``.

    A leading ``//`` (exactly two) is kept, as POSIX allows; URIs are left alone.
    """
    scheme = path.find("://")
    if scheme >= 0 and path.find("/") > scheme:
        return path
    prefix, rest = ("//", path[2:]) if path[:2] == "//" and path[2:3] != "/" else ("", path)
    out: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] != "/":
            out.append(rest[i])
            i += 1
            continue
        while i < len(rest) and rest[i] == "/":
            i += 1
        if (prefix or out) and i == len(rest):
            break
        out.append("/")
    return prefix + "".join(out)


def parse_uuid(text: str) -> str | None:
    """``virUUIDParse``: 32 hex digits, ``-`` anywhere between pairs; canonical form."""
    s = text.lstrip(" \t\n\v\f\r")
    digits: list[str] = []
    i = 0
    while len(digits) < 16:
        while i < len(s) and s[i] == "-":
            i += 1
        if i + 1 >= len(s) or not all(c in "0123456789abcdefABCDEF" for c in s[i : i + 2]):
            return None
        digits.append(s[i : i + 2].lower())
        i += 2
    if s[i:].strip(" \t\n\v\f\r"):
        return None
    h = "".join(digits)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_perms(parent: Element, path: str) -> Permissions | None:
    """``virStorageDefParsePerms``: octal mode <= 0777, decimal owner/group, -1 = unset."""
    node = xnode(parent, path)
    if node is None:
        return None
    mode: int | None = None
    raw_mode = xstring(node, "./mode")
    if raw_mode is not None:
        mode = c_int(raw_mode, 8)
        if mode is None or not 0 <= mode <= 0o777:
            raise fail("malformed octal mode")

    def ident(tag: str) -> int | None:
        if xnode(node, f"./{tag}") is None:
            return None
        raw = xstring(node, f"./{tag}")
        value = c_int(raw, 10) if raw is not None else None
        if value is None or not (-1 <= value <= _UINT_MAX):
            raise fail(f"malformed {tag} element")
        return None if value in (-1, _UINT_MAX) else value

    owner = ident("owner")
    group = ident("group")
    return Permissions(mode=mode, owner=owner, group=group, label=xstring(node, "./label"))


def format_perms(w: Writer, perms: Permissions | None) -> None:
    if perms is None or (
        perms.mode is None and perms.owner is None and perms.group is None and not perms.label
    ):
        return
    w.open("<permissions>")
    if perms.mode is not None:
        w.line(f"<mode>0{perms.mode:o}</mode>")
    if perms.owner is not None:
        w.line(f"<owner>{perms.owner}</owner>")
    if perms.group is not None:
        w.line(f"<group>{perms.group}</group>")
    if perms.label:
        w.line(f"<label>{esc(perms.label)}</label>")
    w.close("</permissions>")


def parse_secret_lookup(node: Element, secret_type: str | None) -> SecretRef:
    """``virSecretLookupParseSecret``: exactly one of uuid / usage."""
    uuid = attr(node, "uuid")
    usage = attr(node, "usage")
    if uuid is None and usage is None:
        raise fail("missing secret uuid or usage attribute")
    if uuid is not None and usage is not None:
        raise fail("either secret uuid or usage expected")
    if uuid is not None:
        canonical = parse_uuid(uuid)
        if canonical is None:
            raise fail(f"invalid secret uuid '{uuid}'")
        return SecretRef(uuid=canonical, type=secret_type)
    return SecretRef(usage=usage, type=secret_type)


def format_secret(w: Writer, secret: SecretRef) -> None:
    head = f"<secret type='{esc(secret.type)}'" if secret.type is not None else "<secret"
    if secret.uuid is not None:
        w.line(f"{head} uuid='{secret.uuid}'/>")
    elif secret.usage is not None:
        w.line(f"{head} usage='{esc(secret.usage)}'/>")
    else:
        w.line(f"{head}/>")
