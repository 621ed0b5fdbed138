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


def convert_argv(
    src: str, src_format: str, dst: str, dst_format: str, *, options: Sequence[str] = (),
    progress: bool = False,
) -> list[str]:
    """``qemu-img convert`` into an existing (pre-created) or new target; zeros stay holes."""
    argv = [QEMU_IMG, "convert", "-f", src_format, "-O", dst_format]
    if progress:
        argv.append("-p")
    if options:
        argv += ["-o", ",".join(options)]
    return [*argv, src, dst]


def resize_argv(path: str, fmt: str, size: int, *, shrink: bool = False) -> list[str]:
    """``qemu-img resize`` to ``size`` bytes, rounded up to a 512-byte sector as libvirt does."""
    size = (size + 511) // 512 * 512
    argv = [QEMU_IMG, "resize", "-q", "-f", fmt]
    if shrink:
        argv.append("--shrink")
    return [*argv, path, str(size)]


def info_argv(path: str, fmt: str) -> list[str]:
    """``qemu-img info`` of a trusted volume, format given (never probed), shared lock."""
    return [QEMU_IMG, "info", "--output=json", "-U", "-f", fmt, path]


def snapshot_argv(action: str, path: str, name: str | None = None) -> list[str]:
    """``qemu-img snapshot``: action is one of create, apply, delete (internal snapshots)."""
    flag = {"create": "-c", "apply": "-a", "delete": "-d"}[action]
    assert name is not None
    # qemu-img snapshot has no -f: the format is forced through --image-opts instead.
    return [QEMU_IMG, "snapshot", "-q", "--image-opts", flag, name, image_opts("qcow2", path)]


def image_opts(fmt: str, path: str) -> str:
    """An --image-opts string naming the format, so qemu-img never probes it."""
    return f"driver={fmt},file.driver=file,file.filename={path.replace(',', ',,')}"


def iscsi_opts(portal: str, iqn: str, lun: int, initiator: str, *, user: str | None = None,
               secret_id: str | None = None, offset: int | None = None,
               size: int | None = None) -> str:
    """--image-opts for one iSCSI LUN through QEMU's own initiator (libiscsi), as raw.

    ``offset``/``size`` make a window of the LUN (upload and download ranges). A CHAP
    password is named by the id of a ``--object secret`` (read from a file), never given.
    """
    def esc(value: str) -> str:
        return value.replace(",", ",,")

    opts = ["driver=raw"]
    if offset is not None:
        opts.append(f"offset={offset}")
    if size is not None:
        opts.append(f"size={size}")
    opts += ["file.driver=iscsi", "file.transport=tcp", f"file.portal={esc(portal)}",
             f"file.target={esc(iqn)}", f"file.lun={lun}",
             f"file.initiator-name={esc(initiator)}"]
    if user is not None:
        opts.append(f"file.user={esc(user)}")
        if secret_id is not None:
            opts.append(f"file.password-secret={secret_id}")
    return ",".join(opts)


def secret_object(secret_id: str, path: str) -> list[str]:
    """``--object secret``: qemu reads the value from ``path`` (a file only root reads)."""
    return ["--object", f"secret,id={secret_id},file={path.replace(',', ',,')},format=raw"]
