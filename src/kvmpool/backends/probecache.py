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

_VERSION = 3  # 2: trailing default fields left out; 3: each distinct result stored once
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
    """The cache of one pool. On disk: each distinct probe result once (``infos``), and
    per file its stat key and the index of its result (``files``): a pool of thousands of
    copies of a few kinds of image loads, and decodes, only those few results."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.old: dict[str, list[Any]] = {}  # name -> [ino, size, mtime_ns, ctime_ns, index]
        self.infos: list[list[Any]] = []  # encoded results, as stored
        self.decoded: dict[int, ImageInfo] = {}
        self.new: dict[str, tuple[list[int], ImageInfo]] = {}
        self.changed = False
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("version") == _VERSION:
                self.old = data["files"]
                self.infos = data["infos"]
        except (OSError, ValueError, KeyError, TypeError):
            self.old, self.infos = {}, []

    def get(self, name: str, st: os.stat_result) -> ImageInfo | None:
        entry = self.old.get(name)
        if entry is None:
            return None
        try:
            if (entry[0] != st.st_ino or entry[1] != st.st_size or entry[2] != st.st_mtime_ns
                    or entry[3] != st.st_ctime_ns):
                return None
            index = entry[4]
            info = self.decoded.get(index)
            if info is None:
                if not 0 <= index < len(self.infos):
                    return None
                info = self.decoded[index] = _decode(self.infos[index])
        except (IndexError, TypeError, KeyError):
            return None
        self.new[name] = (entry[:4], info)
        return info

    def put(self, name: str, st: os.stat_result, info: ImageInfo) -> None:
        self.new[name] = (_key(st), info)
        self.changed = True

    def save(self) -> None:
        """Write what this scan saw (files gone since are dropped). Errors are ignored."""
        if self.path is None or not (self.changed or self.new.keys() != self.old.keys()):
            return
        index: dict[ImageInfo, int] = {}
        files = {}
        for name, (key, info) in self.new.items():
            files[name] = [*key, index.setdefault(info, len(index))]
        infos = [_encode(info) for info in index]
        with contextlib.suppress(OSError):
            atomic_write(self.path, json.dumps({"version": _VERSION, "infos": infos,
                                                "files": files}, separators=(",", ":")))
