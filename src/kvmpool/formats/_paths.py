"""Backing-name resolution, following qemu's rules for what is a path.

qemu treats a name as a protocol string when a ``:`` comes before the first ``/``
(``nbd:host:10809``, ``rbd:pool/img``, ``nbd://host/x``, ``json:{...}``); ``file:`` names
a local path. Anything else is a path, relative to the directory of the image naming it.
Paths are joined, not normalised: ``..`` after a symlinked directory must keep its meaning.
"""

from __future__ import annotations

import os

from kvmpool.formats.info import BackingRef


def is_protocol(name: str) -> bool:
    """True for names qemu hands to a protocol driver instead of opening as a file."""
    colon = name.find(":")
    if colon < 0:
        return False
    slash = name.find("/")
    return slash < 0 or colon < slash


def resolve(name: str, image_path: str) -> str | None:
    """The absolute path ``name`` means when the image at ``image_path`` records it."""
    if name.startswith("file:"):
        name = name[len("file:") :]
    elif is_protocol(name):
        return None
    if not name or "\0" in name:
        return None
    if os.path.isabs(name):
        return name
    return os.path.join(os.path.dirname(os.path.abspath(image_path)), name)


def backing_ref(raw: str, image_path: str, fmt: str | None) -> BackingRef:
    return BackingRef(raw=raw, path=resolve(raw, image_path), format=fmt or None)
