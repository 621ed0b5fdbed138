"""Moving bytes at disk speed: reflink, sparse-aware copy, hole punching, zeroing.

The fastest correct path first: ``FICLONE`` shares extents where the file system can
(XFS, btrfs), else data extents found with ``SEEK_DATA``/``SEEK_HOLE`` are copied with
``copy_file_range`` (in-kernel, no user-space buffer) and holes stay holes. Every loop
reports progress through a callback and can be interrupted (Ctrl-C) between chunks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

Progress = Callable[[int], None]  # called with the number of bytes just done

FICLONE = 0x40049409
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
CHUNK = 16 << 20
SYNC_FILE_RANGE_WRITE = 2
_ZEROS = bytes(1 << 20)


def _noop(_done: int) -> None:
    pass


def reflink(src_fd: int, dst_fd: int) -> bool:
    """Share all of src's extents with dst; False where the file system cannot."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL,
                         errno.ENOSYS, errno.EPERM, errno.EBADF):
            return False
        raise
    return True


def data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the data in [start, end), holes skipped (all data if unsupported)."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # only a hole is left
                return
            if err.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield pos, end - pos
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole - data
        pos = hole


class Writeback:
    """Starts the disk writes of copied ranges (sync_file_range) on a thread of its own, so
    that copying the next chunk and submitting the last one's writes overlap (two CPUs):
    a copy that ends with fsync then takes about as long as one that does not. Failures
    here are left for that fsync to report."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="writeback", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            with contextlib.suppress(OSError):
                start_writeback(self.fd, *item)

    def add(self, offset: int, length: int) -> None:
        self._queue.put((offset, length))

    def close(self) -> None:
        """Wait for the thread: after this the descriptor may be closed."""
        self._queue.put(None)
        self._thread.join()


@contextlib.contextmanager
def _writeback(fd: int, wanted: bool) -> Iterator[Writeback | None]:
    if not wanted:
        yield None
        return
    wb = Writeback(fd)
    try:
        yield wb
    finally:
        wb.close()


def copy_range(src_fd: int, dst_fd: int, src_off: int, dst_off: int, length: int,
               progress: Progress = _noop, *, writeback: Writeback | None = None) -> None:
    """Copy ``length`` bytes, in-kernel where possible. ``writeback``: start writing each
    chunk to disk as it is copied (for a copy that ends with fsync); None: the kernel
    decides when."""
    use_cfr = True
    while length > 0:
        n = min(length, CHUNK)
        done = 0
        if use_cfr:
            try:
                done = os.copy_file_range(src_fd, dst_fd, n, src_off, dst_off)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                     errno.EBADF):
                    raise
                use_cfr = False
        if not use_cfr:
            buf = os.pread(src_fd, min(n, 1 << 20), src_off)
            done = os.pwrite(dst_fd, buf, dst_off) if buf else 0
        if done == 0:
            raise OSError(errno.EIO, f"source ended {length} bytes early")
        if writeback is not None:
            writeback.add(dst_off, done)
        src_off += done
        dst_off += done
        length -= done
        progress(done)


def copy_sparse(src_fd: int, dst_fd: int, *, src_off: int = 0, dst_off: int = 0,
                length: int, progress: Progress = _noop, punch: bool = False,
                writeback: bool = True) -> None:
    """Copy [src_off, src_off+length) to dst_off, keeping holes as holes.

    With ``punch``, ranges that are holes in the source are punched in the destination
    (for writing into an existing volume); otherwise they are simply skipped (a new file).
    """
    pos = src_off
    end = src_off + length
    with _writeback(dst_fd, writeback) as wb:
        for data, size in data_extents(src_fd, src_off, end):
            if punch and data > pos:
                punch_hole(dst_fd, dst_off + pos - src_off, data - pos)
            progress(data - pos)
            copy_range(src_fd, dst_fd, data, dst_off + data - src_off, size, progress,
                       writeback=wb)
            pos = data + size
    if punch and pos < end:
        punch_hole(dst_fd, dst_off + pos - src_off, end - pos)
    progress(end - pos)


def copy_full(src_fd: int, dst_fd: int, *, src_off: int = 0, dst_off: int = 0,
              length: int, progress: Progress = _noop, writeback: bool = True) -> None:
    """Copy writing every byte, holes as zeros (a fully allocated result)."""
    pos = src_off
    end = src_off + length
    with _writeback(dst_fd, writeback) as wb:
        for data, size in data_extents(src_fd, src_off, end):
            if data > pos:
                write_zeros(dst_fd, dst_off + pos - src_off, data - pos, progress)
            copy_range(src_fd, dst_fd, data, dst_off + data - src_off, size, progress,
                       writeback=wb)
            pos = data + size
    if pos < end:
        write_zeros(dst_fd, dst_off + pos - src_off, end - pos, progress)


def write_zeros(fd: int, offset: int, length: int, progress: Progress = _noop) -> None:
    while length > 0:
        n = os.pwrite(fd, _ZEROS[: min(len(_ZEROS), length)], offset)
        offset += n
        length -= n
        progress(n)


_libc: list[ctypes.CDLL] = []  # loaded on first use


def libc() -> ctypes.CDLL:
    """The C library's functions that ``os`` lacks (sync_file_range, fallocate modes).

    ctypes is imported here, not at start-up, and the library is the process's own
    (``CDLL(None)``): no ``ctypes.util.find_library`` search, which runs ldconfig."""
    if not _libc:
        import ctypes

        _libc.append(ctypes.CDLL(None, use_errno=True))
    return _libc[0]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk now (sync_file_range), so that the final fsync of a
    copy has little left to wait for: the copy overlaps with the disk writes."""
    import ctypes

    libc().sync_file_range(ctypes.c_int(fd), ctypes.c_longlong(offset),
                           ctypes.c_longlong(length), ctypes.c_uint(SYNC_FILE_RANGE_WRITE))


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range (reads back as zeros); zeros are written where punching fails."""
    if length <= 0:
        return
    import ctypes

    mode = ctypes.c_int(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
    rc = libc().fallocate(ctypes.c_int(fd), mode, ctypes.c_longlong(offset),
                          ctypes.c_longlong(length))
    if rc != 0:
        write_zeros(fd, offset, length)


def stream_in(read: Callable[[int], bytes], dst_fd: int, *, dst_off: int, limit: int | None,
              sparse: bool, progress: Progress = _noop) -> int:
    """Copy from a pipe-like reader into dst at dst_off; returns bytes taken. Zero blocks
    are punched (not written) with ``sparse``. Stops at ``limit`` bytes."""
    total = 0
    block = 1 << 20
    while limit is None or total < limit:
        want = block if limit is None else min(block, limit - total)
        buf = read(want)
        if not buf:
            break
        if sparse and buf.count(0) == len(buf):
            punch_hole(dst_fd, dst_off + total, len(buf))
        else:
            view = memoryview(buf)
            while view:
                n = os.pwrite(dst_fd, view, dst_off + total)
                view = view[n:]
                total += n
            progress(len(buf))
            continue
        total += len(buf)
        progress(len(buf))
    return total
