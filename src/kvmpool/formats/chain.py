"""Backing chains, walked link by link with the rules that keep a host safe.

* A backing file is read only as the format its overlay records. When the overlay records
  none, the link is reported ``format-unknown`` and is not opened: guessing would let a
  guest that writes a qcow2 header into its raw disk make the host open any file.
* Loops (by device and inode) and chains longer than ``max_depth`` end the walk with a
  link that says so; a missing file ends it with a ``missing`` link. Nothing raises.
* Protocol names (``nbd:``, ``rbd:``, ``json:`` ...) are reported ``network``, not followed.

Runs no host commands: one ``open`` and a few ``pread`` calls per link.
"""

from __future__ import annotations

import os

from kvmpool.formats.info import BackingRef, ChainLink, LinkState
from kvmpool.formats.probe import probe


def _absent_state(path: str) -> tuple[LinkState, str]:
    try:
        os.stat(path)
    except FileNotFoundError:
        return LinkState.MISSING, f"{path} does not exist"
    except OSError as e:
        return LinkState.UNREADABLE, f"{path}: {e.strerror}"
    return LinkState.FORMAT_UNKNOWN, "the overlay does not record the backing format"


def backing_chain(
    path: str, *, max_depth: int = 64, format: str | None = None
) -> tuple[ChainLink, ...]:
    """The chain from ``path`` (depth 0) down through its backing files.

    ``format`` is the known format of ``path`` itself; without it, depth 0 is probed (the
    caller decides whether that is safe: kvmpool records formats of its own volumes).
    ``max_depth`` bounds the number of backing links followed below depth 0.
    """
    links: list[ChainLink] = []
    seen: set[tuple[int, int]] = set()
    cur_path: str = os.path.abspath(path)
    cur_fmt: str | None = format
    ref: BackingRef | None = None
    depth = 0
    while True:
        if depth > max_depth:
            links.append(
                ChainLink(
                    depth,
                    cur_path,
                    cur_fmt,
                    LinkState.TOO_DEEP,
                    ref,
                    problem=f"more than {max_depth} backing links",
                )
            )
            break
        if depth > 0 and cur_fmt is None:
            state, problem = _absent_state(cur_path)
            links.append(ChainLink(depth, cur_path, None, state, ref, problem=problem))
            break
        try:
            st = os.stat(cur_path)
        except FileNotFoundError:
            links.append(
                ChainLink(
                    depth,
                    cur_path,
                    cur_fmt,
                    LinkState.MISSING,
                    ref,
                    problem=f"{cur_path} does not exist",
                )
            )
            break
        except OSError as e:
            links.append(
                ChainLink(
                    depth,
                    cur_path,
                    cur_fmt,
                    LinkState.UNREADABLE,
                    ref,
                    problem=f"{cur_path}: {e.strerror}",
                )
            )
            break
        key = (st.st_dev, st.st_ino)
        if key in seen:
            links.append(
                ChainLink(
                    depth,
                    cur_path,
                    cur_fmt,
                    LinkState.LOOP,
                    ref,
                    problem=f"{cur_path} is already in the chain",
                )
            )
            break
        seen.add(key)
        try:
            info = probe(cur_path, format=cur_fmt)
        except OSError as e:
            links.append(
                ChainLink(
                    depth,
                    cur_path,
                    cur_fmt,
                    LinkState.UNREADABLE,
                    ref,
                    problem=f"{cur_path}: {e.strerror}",
                )
            )
            break
        links.append(ChainLink(depth, cur_path, info.format, LinkState.OK, ref, info, info.corrupt))
        nxt = info.backing
        if nxt is None:
            break
        depth += 1
        ref = nxt
        if nxt.path is None:
            links.append(
                ChainLink(
                    depth,
                    None,
                    nxt.format,
                    LinkState.NETWORK,
                    nxt,
                    problem=f"protocol name {nxt.raw!r} is not followed",
                )
            )
            break
        cur_path, cur_fmt = nxt.path, nxt.format
    return tuple(links)
