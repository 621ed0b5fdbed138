"""What header probing found in each file of a pool, remembered between commands.

A listing of a big pool is dominated by opening and parsing every image header. The
cache keys each file's result by what ``stat`` says of it (inode, size, mtime, ctime, all
in nanoseconds): a file that changed in any way is probed again, so the cache can be
stale only if a file's content changed without its mtime and ctime changing, which a
normal write cannot do. One JSON file per pool, under kvmpool's runtime directory
(``<run>/cache/<pool uuid>.json``); losing it costs one slower listing, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from kvmpool.fileio import atomic_write
from kvmpool.formats import BackingRef, ImageInfo

_VERSION = 2  # 2: trailing default fields left out of each entry
# ImageInfo's fields after format and capacity, in the order stored, with their defaults.
_DEFAULTS: list[Any] = [None, None, None, None, False, False, None, None, [], None, None]


def _key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _encode(info: ImageInfo) -> list[Any]:
    """The fields as a list, without the trailing ones that hold their default (a raw
    file is ``["raw", size]``): a pool of 10,000 files loads its cache faster."""
    b = info.backing
    v = [info.format, info.capacity, [b.raw, b.path, b.format] if b else None,
         info.encryption, info.compat, info.cluster_size, info.lazy_refcounts,
         info.extended_l2, info.compression_type, info.data_file, list(info.extra_files),
         info.subformat, info.corrupt]
    while len(v) > 2 and v[-1] == _DEFAULTS[len(v) - 3]:
        v.pop()
    return v


def _decode(v: list[Any]) -> ImageInfo:
    if len(v) < 13:
        v = v + _DEFAULTS[len(v) - 2:]
    b = v[2]
    return ImageInfo(format=v[0], capacity=v[1],
                     backing=BackingRef(raw=b[0], path=b[1], format=b[2]) if b else None,
                     encryption=v[3], compat=v[4], cluster_size=v[5], lazy_refcounts=v[6],
                     extended_l2=v[7], compression_type=v[8], data_file=v[9],
                     extra_files=tuple(v[10]), subformat=v[11], corrupt=v[12])


class ProbeCache:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.old: dict[str, list[Any]] = {}
        self.new: dict[str, list[Any]] = {}
        self.changed = False
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("version") == _VERSION:
                self.old = data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            self.old = {}

    def get(self, name: str, st: os.stat_result) -> ImageInfo | None:
        entry = self.old.get(name)
        if entry is None:
            return None
        try:
            key = entry[0]
            if (key[0] != st.st_ino or key[1] != st.st_size or key[2] != st.st_mtime_ns
                    or key[3] != st.st_ctime_ns):
                return None
            info = _decode(entry[1])
        except (IndexError, TypeError, KeyError):
            return None
        self.new[name] = entry
        return info

    def put(self, name: str, st: os.stat_result, info: ImageInfo) -> None:
        self.new[name] = [_key(st), _encode(info)]
        self.changed = True

    def save(self) -> None:
        """Write what this scan saw (files gone since are dropped). Errors are ignored."""
        if self.path is None or not (self.changed or self.new.keys() != self.old.keys()):
            return
        with contextlib.suppress(OSError):
            atomic_write(self.path, json.dumps({"version": _VERSION, "files": self.new},
                                               separators=(",", ":")))
