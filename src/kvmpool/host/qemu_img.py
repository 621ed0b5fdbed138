"""qemu-img: pure argv builders (and the error classifier for what it prints)."""

from __future__ import annotations

from collections.abc import Sequence

from kvmpool.errors import HostCommandFailed, InUse, KvmpoolError
from kvmpool.host.run import Completed

QEMU_IMG = "qemu-img"


def create_argv(
    fmt: str,
    path: str,
    capacity: int | None,
    *,
    backing: str | None = None,
    backing_format: str | None = None,
    options: Sequence[str] = (),
) -> list[str]:
    """``qemu-img create``; ``-F`` always accompanies ``-b``; size omitted only with a backing file.

    >>> create_argv("qcow2", "/p/v.qcow2", 1048576, options=["compat=1.1"])
    ['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', '/p/v.qcow2', '1048576']
    """
    argv = [QEMU_IMG, "create", "-q", "-f", fmt]
    if backing is not None:
        if backing_format is None:
            raise ValueError("a backing file needs its format")
        argv += ["-b", backing, "-F", backing_format]
    if options:
        argv += ["-o", ",".join(options)]
    argv.append(path)
    if capacity is not None:
        argv.append(str(capacity))
    elif backing is None:
        raise ValueError("capacity is required without a backing file")
    return argv


def classify(result: Completed, err: HostCommandFailed) -> KvmpoolError:
    """Turn a failed qemu-img call into the error a user can act on."""
    if "Failed to get" in result.stderr and "lock" in result.stderr:
        return InUse(
            "the image is in use by another process (qemu-img could not lock it)",
            hint="stop the guest using it first",
        )
    return err
