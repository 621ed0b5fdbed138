"""The ``dir`` backend: a pool is a directory, volumes are the files in it."""

from __future__ import annotations

import dataclasses
import errno
import os

from kvmpool.backends import fileops, files
from kvmpool.backends.base import Context, CreateOptions, Overwrite, Reflink
from kvmpool.backends.probecache import ProbeCache
from kvmpool.copy import Progress
from kvmpool.errors import InvalidArgument, InvalidState, KvmpoolError
from kvmpool.model import Permissions, PoolDef, Snapshot, VolumeDef

DEFAULT_DIR_MODE = 0o711


def target_of(pool: PoolDef) -> str:
    path = pool.target.path
    if not path:
        raise InvalidArgument(f"pool '{pool.name}' has no target path")
    return path


class DirBackend:
    """May run: nothing but file-system calls (qemu-img through ``files`` for images)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, pool: PoolDef) -> bool:
        return os.path.isdir(target_of(pool))

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        if overwrite is not Overwrite.DEFAULT:
            raise InvalidArgument("No source device specified when formatting pool",
                                  hint="--overwrite and --no-overwrite apply to device pools")
        make_target(self.ctx, target_of(pool), pool.target.permissions)

    def start(self, pool: PoolDef) -> None:
        path = target_of(pool)
        if not os.path.isdir(path):
            reason = "Not a directory" if os.path.exists(path) else "No such file or directory"
            raise InvalidState(f"cannot open directory '{path}': {reason}",
                               hint=f"create it with: kvmpool pool-build {pool.name}")

    def stop(self, pool: PoolDef) -> None:
        """Nothing to undo for a directory."""

    def delete(self, pool: PoolDef) -> None:
        path = target_of(pool)
        if not self.ctx.runner.change(f"remove directory {path}"):
            return
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return
        except OSError as err:
            msg = f"failed to remove pool '{path}': {err.strerror}"
            hint = None
            if err.errno == errno.ENOTEMPTY:
                hint = f"delete its volumes first (kvmpool vol-list {pool.name})"
            raise KvmpoolError(msg, hint=hint) from None

    def refresh(self, pool: PoolDef) -> PoolDef:
        path = target_of(pool)
        self.start(pool)
        capacity, allocation, available = files.statvfs_sizes(path)
        st = os.stat(path)
        label = pool.target.permissions.label if pool.target.permissions else None
        perms = Permissions(mode=st.st_mode & 0o777, owner=st.st_uid, group=st.st_gid,
                            label=label)
        return dataclasses.replace(
            pool, capacity=capacity, allocation=allocation, available=available,
            target=dataclasses.replace(pool.target, permissions=perms))

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        cache = None
        if details and self.ctx.cache_dir is not None:
            cache = ProbeCache(os.path.join(self.ctx.cache_dir, pool.uuid + ".json"))
        return files.scan(target_of(pool), details=details, cache=cache)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        if "/" in name or name in ("", ".", ".."):
            return None
        return files.describe(os.path.join(target_of(pool), name), name)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        files.create(self.ctx.runner, target_of(pool), vol, options, self.ctx.secret_ref)

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        files.delete(self.ctx.runner, vol)

    # optional abilities (declared in caps.TABLE)

    def create_volume_from(
        self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, *, reflink: Reflink,
        prealloc_metadata: bool, progress: Progress | None,
    ) -> None:
        fileops.clone(self.ctx.runner, target_of(pool), source, vol, reflink=reflink,
                      prealloc_metadata=prealloc_metadata, progress=progress)

    def resize_volume(
        self, pool: PoolDef, vol: VolumeDef, capacity: int, *, shrink: bool, allocate: bool
    ) -> None:
        fileops.resize(self.ctx.runner, vol, capacity, shrink=shrink, allocate=allocate)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        fileops.wipe(self.ctx.runner, vol, algorithm, progress)

    def list_snapshots(self, pool: PoolDef, vol: VolumeDef) -> list[Snapshot]:
        return fileops.snapshots(self.ctx.runner, vol)

    def create_snapshot(
        self, pool: PoolDef, vol: VolumeDef, name: str, size: int | None = None
    ) -> None:
        if size is not None:
            raise InvalidArgument("--size applies to LVM snapshots, not to qcow2 snapshots")
        fileops.snapshot(self.ctx.runner, vol, "create", name)

    def revert_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        fileops.snapshot(self.ctx.runner, vol, "apply", name)

    def delete_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None:
        fileops.snapshot(self.ctx.runner, vol, "delete", name)


def make_target(ctx: Context, path: str, perms: Permissions | None) -> None:
    """mkdir -p the parents; the target gets the XML's mode (0711 when new) and owner."""
    mode = perms.mode if perms is not None and perms.mode is not None else None
    exists = os.path.isdir(path)
    if exists and mode is None and (perms is None or (perms.owner is None and perms.group is None)):
        return
    if os.path.exists(path) and not exists:
        raise InvalidArgument(f"cannot build pool: '{path}' exists and is not a directory")
    final_mode = mode if mode is not None else (None if exists else DEFAULT_DIR_MODE)
    what = f"create directory {path}" if not exists else f"set permissions of {path}"
    if final_mode is not None:
        what += f" (mode {final_mode:04o})"
    if not ctx.runner.change(what):
        return
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    if not exists:
        os.mkdir(path, 0o700)
    if final_mode is not None:
        os.chmod(path, final_mode)
    if perms is not None and (perms.owner is not None or perms.group is not None):
        os.chown(path, -1 if perms.owner is None else perms.owner,
                 -1 if perms.group is None else perms.group)
