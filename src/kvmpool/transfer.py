"""vol-upload and vol-download: bytes between a volume's path and a file or a pipe.

As libvirt: upload writes into the existing volume (never creates or truncates it);
download writes a new file (fully allocated unless ``sparse``). With ``sparse``, holes in
the source stay holes: skipped in a new file, punched in a volume.

An upload changes a volume, so it ends with fsync. A download writes the user's own file,
as ``cp`` or virsh would: the kernel writes it back in its own time (no fsync).
"""

from __future__ import annotations

import os
import stat
import sys

from kvmpool import copy
from kvmpool.copy import Progress
from kvmpool.errors import InvalidArgument


def _quiet(_n: int) -> None:
    pass


def _size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_ISBLK(os.fstat(fd).st_mode)


def upload(vol_path: str, source: str, *, offset: int = 0, length: int | None = None,
           sparse: bool = False, fits: bool = True, progress: Progress | None = None) -> int:
    """Write ``source`` (a path, or ``-`` for stdin) into the volume at ``offset``.

    ``fits``: refuse data that would run past the volume's end (raw and block volumes).
    Returns the number of bytes taken from the source.
    """
    progress = progress or _quiet
    src_fd = sys.stdin.buffer.fileno() if source == "-" else _open_read(source)
    try:
        dst_fd = os.open(vol_path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            vol_size = _size(dst_fd)
            if _is_regular(src_fd):
                size = _size(src_fd)
                count = size if length is None else length
                if length is not None and size > length:
                    raise InvalidArgument(
                        f"{source} holds {size} bytes, more than --length {length}")
                count = min(count, size)
                _check_fit(fits, offset, count, vol_size)
                if sparse:
                    copy.copy_sparse(src_fd, dst_fd, dst_off=offset, length=count,
                                     progress=progress, punch=True)
                else:
                    copy.copy_full(src_fd, dst_fd, dst_off=offset, length=count,
                                   progress=progress)
            else:
                limit = length
                if fits:
                    _check_fit(True, offset, 0, vol_size)
                    room = vol_size - offset
                    limit = room if limit is None else min(limit, room)
                count = copy.stream_in(lambda n: os.read(src_fd, n), dst_fd, dst_off=offset,
                                       limit=limit, sparse=sparse, progress=progress)
                if os.read(src_fd, 1):
                    raise InvalidArgument(
                        f"the input is longer than the {limit} bytes the volume has room for")
            os.fsync(dst_fd)
            return count
        finally:
            os.close(dst_fd)
    finally:
        if source != "-":
            os.close(src_fd)


def _check_fit(fits: bool, offset: int, count: int, vol_size: int) -> None:
    if fits and (offset > vol_size or offset + count > vol_size):
        raise InvalidArgument(
            f"{count} bytes at offset {offset} do not fit in a volume of {vol_size} bytes",
            hint="resize the volume first (kvmpool vol-resize)")


def download(vol_path: str, dest: str, *, offset: int = 0, length: int | None = None,
             sparse: bool = False, progress: Progress | None = None) -> int:
    """Copy the volume from ``offset`` into ``dest`` (a new file, or ``-`` for stdout)."""
    progress = progress or _quiet
    src_fd = _open_read(vol_path)
    try:
        size = _size(src_fd)
        if offset > size:
            raise InvalidArgument(f"offset {offset} is past the end of the volume ({size})")
        count = size - offset if length is None else min(length, size - offset)
        if dest == "-":
            out = sys.stdout.buffer
            out.flush()
            copy_to_pipe(src_fd, sys.stdout.buffer.fileno(), offset, count, progress)
            return count
        dst_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            if sparse:
                os.ftruncate(dst_fd, count)
                copy.copy_sparse(src_fd, dst_fd, src_off=offset, length=count,
                                 progress=progress, writeback=False)
            else:
                copy.copy_full(src_fd, dst_fd, src_off=offset, length=count, progress=progress,
                               writeback=False)
        finally:
            os.close(dst_fd)
        return count
    finally:
        os.close(src_fd)


def copy_to_pipe(src_fd: int, out_fd: int, offset: int, count: int, progress: Progress) -> None:
    pos = offset
    end = offset + count
    while pos < end:
        buf = os.pread(src_fd, min(1 << 20, end - pos), pos)
        if not buf:
            raise InvalidArgument("the volume ended early")
        view = memoryview(buf)
        while view:
            view = view[os.write(out_fd, view):]
        pos += len(buf)
        progress(len(buf))


def _open_read(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise InvalidArgument(f"cannot open {path}: {err.strerror}") from None
