"""Stable links to devices: the symlinks in a directory like ``/dev/disk/by-path`` that
name a device node. The iscsi, scsi and disk pools show a volume by such a link when the
pool's target directory is one, as libvirt does."""

from __future__ import annotations

import os
from collections.abc import Callable


def links_to(directory: str, accept: Callable[[str], bool] | None = None) -> dict[str, str]:
    """What each link in ``directory`` resolves to -> the link (the first by name when
    several name the same node). ``accept`` filters by the link's name. A directory that
    cannot be read has none."""
    found: dict[str, str] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        path = os.path.join(directory, name)
        if (accept is None or accept(name)) and os.path.islink(path):
            found.setdefault(os.path.realpath(path), path)
    return found
