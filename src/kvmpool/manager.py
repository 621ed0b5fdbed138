"""The one caller of backends: lookups, state changes, capability checks, per-pool locks.

The CLI and (later) the service call only this. Every state change holds the pool's lock;
defining and undefining also hold the definitions lock, so names and UUIDs stay unique.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kvmpool import caps, transfer, xml
from kvmpool.backends import backend_for
from kvmpool.backends.base import (
    Backend,
    Cloner,
    Context,
    CreateOptions,
    DeleteChecker,
    Overwrite,
    Reflink,
    Resizer,
    Snapshotter,
    Stager,
    Transferer,
    Wiper,
)
from kvmpool.caps import Ability
from kvmpool.copy import Progress
from kvmpool.errors import (
    AlreadyExists,
    InUse,
    InvalidArgument,
    InvalidState,
    KvmpoolError,
    NotFound,
    PoolNotFound,
    Unsupported,
    VolumeNotFound,
)
from kvmpool.host.run import Runner
from kvmpool.lock import locked
from kvmpool.model import PoolDef, Snapshot, VolTarget, VolType, VolumeDef
from kvmpool.names import check_pool_name, check_volume_name
from kvmpool.paths import Paths
from kvmpool.secrets import SecretStore
from kvmpool.sources import same_source
from kvmpool.store import PoolRecord, Store
from kvmpool.xml.types import type_info

DEFINITIONS_LOCK = "definitions"


class Manager:
    def __init__(
        self, paths: Paths, runner: Runner | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.paths = paths
        self.runner = runner or Runner()
        self.store = Store(paths, self.runner, warn)
        store = SecretStore(paths)
        self.ctx = Context(
            self.runner,
            cache_dir=None if self.runner.dry_run else os.path.join(paths.run, "cache"),
            secret=store.value_for,
            secret_ref=lambda ref, usage: store.get_value(store.lookup(ref, usage).uuid,
                                                          internal=True),
        )

    # ------------------------------------------------------------ lookups

    def backend(self, pool: PoolDef) -> Backend:
        return backend_for(pool, self.ctx)

    def records(self) -> list[PoolRecord]:
        """All pools; an active pool whose storage vanished is reported inactive."""
        result = [rec for rec in map(self._checked, self.store.load_all()) if rec is not None]
        return sorted(result, key=lambda r: r.name.lower())

    def _checked(self, rec: PoolRecord) -> PoolRecord | None:
        """``rec`` as the system sees it now (None: a transient pool that is gone)."""
        if rec.live is not None and not self._still_active(rec.live):
            if rec.config is None:
                return None
            return dataclasses.replace(rec, live=None)
        return rec

    def _still_active(self, pool: PoolDef) -> bool:
        if not caps.caps(pool.type).has_backend:
            return True
        try:
            return self.backend(pool).check(pool)
        except KvmpoolError:
            return False

    def record(self, name_or_uuid: str) -> PoolRecord:
        """A pool by name, else by UUID (only that pool's storage is checked)."""
        recs = self.store.load_all()
        match = [r for r in recs if r.name == name_or_uuid] or [
            r for r in recs if r.uuid == name_or_uuid.lower()]
        found = self._checked(match[0]) if match else None
        if found is not None:
            return found
        raise PoolNotFound(
            f"Storage pool not found: no storage pool with matching name '{name_or_uuid}'",
            hint="list pools with: kvmpool pool-list --all",
        )

    def active_record(self, pool: str | PoolRecord) -> PoolRecord:
        """A running pool by name or UUID, or one the caller has just looked up."""
        rec = self.record(pool) if isinstance(pool, str) else pool
        if not rec.active:
            raise InvalidState(
                f"storage pool '{rec.name}' is not active",
                hint=f"start it with: kvmpool pool-start {rec.name}",
            )
        return rec

    @contextmanager
    def _pool_lock(self, rec: PoolRecord) -> Iterator[None]:
        with locked(self.paths.locks, rec.uuid, what=f"pool '{rec.name}'"):
            yield

    @contextmanager
    def _defs_lock(self) -> Iterator[None]:
        with locked(self.paths.locks, DEFINITIONS_LOCK, what="the pool definitions"):
            yield

    # ------------------------------------------------------------ definitions

    def define(self, pool: PoolDef) -> PoolDef:
        """Save a persistent definition (new, or a redefinition with the same uuid)."""
        check_pool_name(pool.name)
        with self._defs_lock():
            self._check_unique(pool)
            self.store.save_config(pool)
        return pool

    def _check_unique(self, pool: PoolDef) -> None:
        for rec in self._existing():
            if rec.name == pool.name and rec.uuid != pool.uuid:
                raise AlreadyExists(f"pool '{pool.name}' already exists with uuid {rec.uuid}")
            if rec.uuid == pool.uuid and rec.name != pool.name:
                raise AlreadyExists(f"pool '{rec.name}' is already defined with uuid {rec.uuid}")
            if rec.uuid != pool.uuid and same_source(rec.current, pool):
                raise AlreadyExists(f"Storage source conflict with pool: '{rec.name}'")

    def _existing(self) -> Iterator[PoolRecord]:
        """The stored pools a new definition must not clash with. A transient pool whose
        storage is gone no longer exists (listings hide it): its leftover state is skipped
        here, and overwritten when a pool of that name is created again. Only transient
        pools are checked, so a define does not probe every active pool's storage."""
        for rec in self.store.load_all():
            if rec.config is None and self._checked(rec) is None:
                continue
            yield rec

    def create(self, pool: PoolDef, *, build: Overwrite | None = None) -> PoolDef:
        """Start a transient pool (pool-create): it is gone once destroyed."""
        check_pool_name(pool.name)
        with self._defs_lock():
            self._check_unique(pool)
            if any(r.name == pool.name for r in self._existing()):
                raise AlreadyExists(f"pool '{pool.name}' already exists")
            self._activate(pool, build)
        return pool

    def _activate(self, pool: PoolDef, build: Overwrite | None) -> None:
        """(Build,) start, record the state, first refresh; undone if the refresh fails."""
        backend = self.backend(pool)
        if build is not None:
            caps.require(pool, Ability.BUILD)
            backend.build(pool, build)
        backend.start(pool)
        self.store.save_state(pool)
        try:
            backend.refresh(pool)
        except BaseException:
            backend.stop(pool)
            self.store.remove_state(pool.name)
            raise

    def undefine(self, name: str) -> PoolRecord:
        rec = self.record(name)
        with self._defs_lock(), self._pool_lock(rec):
            if not rec.persistent:
                raise InvalidState(f"pool '{rec.name}' is transient: destroy it instead")
            if rec.active:
                raise InvalidState(f"storage pool '{rec.name}' is still active",
                                   hint=f"stop it first: kvmpool pool-destroy {rec.name}")
            self.store.remove_config(rec.name)
        return rec

    def set_autostart(self, name: str, on: bool) -> PoolRecord:
        rec = self.record(name)
        if not rec.persistent:
            raise InvalidArgument("cannot set autostart for transient pool")
        with self._pool_lock(rec):
            self.store.set_autostart(rec.name, on)
        return rec

    # ------------------------------------------------------------ lifecycle

    def build(self, name: str, overwrite: Overwrite = Overwrite.DEFAULT) -> PoolRecord:
        rec = self.record(name)
        with self._pool_lock(rec):
            if rec.active:
                raise InvalidState(f"storage pool '{rec.name}' is already active")
            caps.require(rec.current, Ability.BUILD)
            self.backend(rec.current).build(rec.current, overwrite)
        return rec

    def start(self, name: str, *, build: Overwrite | None = None) -> PoolRecord:
        rec = self.record(name)
        with self._pool_lock(rec):
            if rec.active:
                raise InvalidState(f"storage pool '{rec.name}' is already active")
            self._activate(rec.current, build)
        return dataclasses.replace(rec, live=rec.current)

    def destroy(self, name: str) -> PoolRecord:
        rec = self.active_record(name)
        with self._pool_lock(rec):
            self.backend(rec.current).stop(rec.current)
            self.store.remove_state(rec.name)
        return rec

    def delete(self, name: str) -> PoolRecord:
        rec = self.record(name)
        with self._pool_lock(rec):
            if rec.active:
                raise InvalidState(f"storage pool '{rec.name}' is still active",
                                   hint=f"stop it first: kvmpool pool-destroy {rec.name}")
            caps.require(rec.current, Ability.DELETE)
            self.backend(rec.current).delete(rec.current)
        return rec

    def refresh(self, name: str) -> PoolDef:
        """Re-read the pool's storage; a pool whose storage is gone becomes inactive."""
        rec = self.active_record(name)
        with self._pool_lock(rec):
            backend = self.backend(rec.current)
            try:
                return backend.refresh(rec.current)
            except KvmpoolError:
                backend.stop(rec.current)
                self.store.remove_state(rec.name)
                raise

    def live_def(self, rec: PoolRecord) -> PoolDef:
        """The definition with live sizes when active (what pool-info and pool-dumpxml show)."""
        if rec.live is None or not caps.caps(rec.live.type).has_backend:
            return rec.current
        return self.backend(rec.live).refresh(rec.live)

    def dumpxml(self, name: str, *, inactive: bool = False) -> str:
        rec = self.record(name)
        if inactive and rec.config is not None:
            return xml.format_pool(rec.config)
        return xml.format_pool(self.live_def(rec))

    def import_libvirt(self, directory: str) -> list[tuple[PoolDef, bool]]:
        """Adopt libvirt's persistent pool definitions (and autostart marks) from ``directory``."""
        imported: list[tuple[PoolDef, bool]] = []
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            raise InvalidArgument(f"no libvirt storage configuration in {directory}") from None
        for entry in entries:
            path = os.path.join(directory, entry)
            if not entry.endswith(".xml") or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                pool = xml.parse_pool(f.read())
            link = os.path.join(directory, "autostart", entry)
            autostart = os.path.islink(link) and os.path.realpath(link) == os.path.realpath(path)
            known = [r for r in self.store.load_all() if r.uuid == pool.uuid]
            if known and known[0].name == pool.name:
                continue  # imported before
            self.define(pool)
            if autostart:
                self.store.set_autostart(pool.name, True)
            imported.append((pool, autostart))
        return imported

    # ------------------------------------------------------------ volumes

    def volumes(
        self, pool_name: str, *, details: bool = False
    ) -> tuple[PoolRecord, list[VolumeDef]]:
        rec = self.active_record(pool_name)
        vols = self.backend(rec.current).list_volumes(rec.current, details=details)
        return rec, sorted(vols, key=lambda v: v.name.lower())

    def volume(self, spec: str, pool_name: str | None = None) -> tuple[PoolRecord, VolumeDef]:
        """Find a volume by name in ``pool_name``, else by key or path in any active pool."""
        if pool_name is not None:
            rec = self.active_record(pool_name)
            vol = self.backend(rec.current).volume(rec.current, spec)
            if vol is None:
                raise VolumeNotFound(
                    f"Storage volume not found: no storage vol with matching name '{spec}'",
                    hint=f"list volumes with: kvmpool vol-list {rec.name}")
            return rec, vol
        path = os.path.normpath(spec) if spec.startswith("/") else None
        if path is None and ("/" in spec or ":" in spec):  # a network volume's key or path
            for rec in self.records():
                if rec.active and caps.caps(rec.current.type).has_backend \
                        and not type_info(rec.current.type).has_target:
                    vol = self.backend(rec.current).volume(rec.current, spec)
                    if vol is not None and spec in (vol.key, vol.target.path):
                        return rec, vol
        for rec in self.records():
            if not rec.active or not caps.caps(rec.current.type).has_backend:
                continue
            target = rec.current.target.path
            if path is None or target is None or os.path.dirname(path) != target:
                continue
            vol = self.backend(rec.current).volume(rec.current, os.path.basename(path))
            if vol is not None:
                return rec, vol
        raise VolumeNotFound(
            f"Storage volume not found: no storage vol with matching key or path '{spec}'",
            hint="give the pool with --pool to look a volume up by name")

    def create_volume(
        self, pool_ref: str | PoolRecord, vol: VolumeDef, options: CreateOptions | None = None
    ) -> VolumeDef:
        """vol-create; ``pool_ref``: a name or UUID, or the record the caller parsed ``vol``
        with (its pool is not looked up and checked again)."""
        options = options or CreateOptions()
        rec = self.active_record(pool_ref)
        pool = rec.current
        check_volume_name(vol.name)
        caps.require(pool, Ability.CREATE_VOLUME)
        formats = caps.caps(pool.type).vol_formats
        fmt = vol.target.format or (formats[0] if formats else None)
        if fmt is not None:
            caps.require_format(pool, fmt)
        vol = dataclasses.replace(vol, target=dataclasses.replace(vol.target, format=fmt))
        with self._pool_lock(rec):
            backend = self.backend(pool)
            if backend.volume(pool, vol.name) is not None:
                raise AlreadyExists(f"storage volume '{vol.name}' exists already")
            backend.create_volume(pool, vol, options)
            if self.runner.dry_run:
                return vol
            made = backend.volume(pool, vol.name)
        if made is None:
            raise KvmpoolError(f"volume '{vol.name}' vanished right after it was created")
        return made

    def delete_volume(
        self, spec: str, pool_name: str | None = None, *, delete_snapshots: bool = False
    ) -> tuple[PoolRecord, VolumeDef]:
        """vol-delete; ``delete_snapshots`` (libvirt's, rbd): the snapshots go first."""
        rec, vol = self.volume(spec, pool_name)
        caps.require(rec.current, Ability.DELETE_VOLUME)
        if delete_snapshots:
            caps.require_volume(rec.current, vol.target.format, Ability.SNAPSHOT)
        backend = self.backend(rec.current)
        with self._pool_lock(rec):
            users = self.dependants(vol)
            if users:
                raise InUse(
                    f"volume '{vol.name}' is the backing file of: " + ", ".join(users),
                    hint="delete those volumes first, or clone them (a clone is independent)")
            if isinstance(backend, DeleteChecker):
                backend.check_delete(rec.current, vol, delete_snapshots=delete_snapshots)
            if delete_snapshots:
                assert isinstance(backend, Snapshotter)
                for snap in backend.list_snapshots(rec.current, vol):
                    backend.delete_snapshot(rec.current, vol, snap.name)
            backend.delete_volume(rec.current, vol)
        return rec, vol

    def dependants(self, vol: VolumeDef) -> list[str]:
        """Volumes (in any active pool) whose backing file is ``vol``, as pool/name."""
        path = vol.target.path
        if path is None:
            return []
        found = []
        network = vol.type is VolType.NETWORK
        for rec in self.records():
            if not rec.active or not caps.caps(rec.current.type).has_backend:
                continue
            if not network and not type_info(rec.current.type).has_target:
                continue  # a local volume backs no image of a network pool (nor asks its cluster)
            try:
                others = self.backend(rec.current).list_volumes(rec.current, details=True)
            except KvmpoolError as err:  # fail closed: its volumes may be backed by vol
                raise InvalidState(
                    f"cannot check whether volumes of pool '{rec.name}' are backed by "
                    f"'{vol.name}': {err.message}",
                    hint=f"try again when pool '{rec.name}' can be read, or stop it first "
                         f"(pool-destroy {rec.name}); its volumes are then not checked") from None
            for other in others:
                backing = other.backing_store
                if backing is not None and backing.path == path:
                    found.append(f"{rec.name}/{other.name}")
        return found

    # ------------------------------------------------------------ volume abilities

    @contextmanager
    def _locks(self, *recs: PoolRecord) -> Iterator[None]:
        """Lock several pools, always in the same order (no deadlock between processes)."""
        unique = sorted({r.uuid: r for r in recs}.values(), key=lambda r: r.uuid)
        with contextlib.ExitStack() as stack:
            for rec in unique:
                stack.enter_context(self._pool_lock(rec))
            yield

    def create_volume_from(
        self, pool_name: str, vol: VolumeDef, input_spec: str, input_pool: str | None = None,
        *, reflink: Reflink = Reflink.AUTO, prealloc_metadata: bool = False,
        progress: Progress | None = None,
    ) -> VolumeDef:
        """vol-create-from / vol-clone: a new volume with the data of another one."""
        rec = self.active_record(pool_name)
        src_rec, src = self.volume(input_spec, input_pool or pool_name)
        pool = rec.current
        check_volume_name(vol.name)
        caps.require_volume(src_rec.current, src.target.format, Ability.CLONE)
        caps.require(pool, Ability.CLONE)
        formats = caps.caps(pool.type).vol_formats
        fmt = None  # pool types without volume formats (logical) take raw data
        if formats:
            fmt = vol.target.format or src.target.format or formats[0]
            fmt = "raw" if fmt == "iso" else fmt  # an ISO's bytes are a raw image
            caps.require_format(pool, fmt)
        vol = dataclasses.replace(vol, target=dataclasses.replace(vol.target, format=fmt))
        backend = self.backend(pool)
        if not isinstance(backend, Cloner):
            raise Unsupported(f"pool '{pool.name}' ({pool.type}) cannot clone volumes")
        with self._locks(rec, src_rec), contextlib.ExitStack() as stack:
            if backend.volume(pool, vol.name) is not None:
                raise AlreadyExists(f"storage volume '{vol.name}' exists already")
            # A network volume (rbd) copied into a pool of another type is first made a
            # local file by its own backend.
            source_backend = self.backend(src_rec.current)
            if isinstance(source_backend, Stager) and src_rec.current.type is not pool.type:
                src = stack.enter_context(
                    source_backend.staged_copy(src_rec.current, src, pool, progress))
                progress = None  # the staging reported the bytes
            backend.create_volume_from(pool, vol, src, reflink=reflink,
                                       prealloc_metadata=prealloc_metadata, progress=progress)
            if self.runner.dry_run:
                return vol
            made = backend.volume(pool, vol.name)
        if made is None:
            raise KvmpoolError(f"volume '{vol.name}' vanished right after it was created")
        return made

    def clone_volume(
        self, spec: str, new_name: str, pool_name: str | None = None, *,
        reflink: Reflink = Reflink.AUTO, prealloc_metadata: bool = False,
        progress: Progress | None = None,
    ) -> VolumeDef:
        rec, src = self.volume(spec, pool_name)
        new = VolumeDef(name=new_name, capacity=src.capacity,
                        target=VolTarget(format=src.target.format,
                                         permissions=src.target.permissions))
        return self.create_volume_from(rec.name, new, src.name, rec.name, reflink=reflink,
                                       prealloc_metadata=prealloc_metadata, progress=progress)

    def resize_volume(
        self, spec: str, pool_name: str | None, size: int, *, delta: bool = False,
        shrink: bool = False, allocate: bool = False,
    ) -> VolumeDef:
        """vol-resize with libvirt's rules; ``size`` may be negative with ``delta``."""
        rec, vol = self.volume(spec, pool_name)
        caps.require_volume(rec.current, vol.target.format, Ability.RESIZE)
        current = vol.capacity or 0
        capacity = max(0, current + size) if delta else size
        if capacity < 0:
            raise InvalidArgument("negative size requires --shrink")
        if capacity < current and not shrink:
            raise InvalidArgument(
                "Can't shrink capacity below current capacity unless shrink flag explicitly "
                "specified", hint="add --shrink (data past the new end is lost)")
        allocation = current if vol.allocation is None else vol.allocation
        if capacity < current and capacity < allocation:
            raise InvalidArgument("can't shrink capacity below existing allocation")
        if allocate and capacity > allocation:
            live = self.live_def(rec)
            if capacity - allocation > live.available:
                raise InvalidArgument("Not enough space left in storage pool")
        backend = self.backend(rec.current)
        assert isinstance(backend, Resizer)
        with self._pool_lock(rec):
            backend.resize_volume(rec.current, vol, capacity, shrink=shrink, allocate=allocate)
            return self.backend(rec.current).volume(rec.current, vol.name) or vol

    def wipe_volume(
        self, spec: str, pool_name: str | None, algorithm: str = "zero",
        progress: Progress | None = None,
    ) -> VolumeDef:
        rec, vol = self.volume(spec, pool_name)
        caps.require_volume(rec.current, vol.target.format, Ability.WIPE)
        caps.require_wipe_algorithm(rec.current, algorithm)
        backend = self.backend(rec.current)
        assert isinstance(backend, Wiper)
        with self._pool_lock(rec):
            backend.wipe_volume(rec.current, vol, algorithm, progress)
        return vol

    def upload(
        self, spec: str, pool_name: str | None, source: str, *, offset: int = 0,
        length: int | None = None, sparse: bool = False, progress: Progress | None = None,
    ) -> int:
        rec, vol = self.volume(spec, pool_name)
        caps.require_volume(rec.current, vol.target.format, Ability.UPLOAD)
        backend = self.backend(rec.current)
        if isinstance(backend, Transferer):  # network volumes: the backend streams
            if not self.runner.change(f"write {source} into {vol.name} at offset {offset}"):
                return 0
            with self._pool_lock(rec):
                return backend.upload(rec.current, vol, source, offset=offset, length=length,
                                      sparse=sparse, progress=progress)
        path = _local_path(vol)
        fits = vol.type is VolType.BLOCK or (vol.target.format or "raw") == "raw"
        if not self.runner.change(f"write {source} into {path} at offset {offset}"):
            return 0
        with self._pool_lock(rec):
            return transfer.upload(path, source, offset=offset, length=length, sparse=sparse,
                                   fits=fits, progress=progress)

    def download(
        self, spec: str, pool_name: str | None, dest: str, *, offset: int = 0,
        length: int | None = None, sparse: bool = False, progress: Progress | None = None,
    ) -> int:
        rec, vol = self.volume(spec, pool_name)
        caps.require_volume(rec.current, vol.target.format, Ability.DOWNLOAD)
        backend = self.backend(rec.current)
        if isinstance(backend, Transferer):  # network volumes: the backend streams
            if dest != "-" and not self.runner.change(f"write {dest} from {vol.name}"):
                return 0
            return backend.download(rec.current, vol, dest, offset=offset, length=length,
                                    sparse=sparse, progress=progress)
        if dest != "-" and not self.runner.change(f"write {dest} from {_local_path(vol)}"):
            return 0
        return transfer.download(_local_path(vol), dest, offset=offset, length=length,
                                 sparse=sparse, progress=progress)

    def snapshots(self, spec: str, pool_name: str | None) -> tuple[VolumeDef, list[Snapshot]]:
        rec, vol, backend = self._snapshotter(spec, pool_name)
        return vol, backend.list_snapshots(rec.current, vol)

    def snapshot(
        self, action: str, spec: str, pool_name: str | None, name: str,
        size: int | None = None,
    ) -> VolumeDef:
        """create, revert or delete the snapshot ``name`` of a volume."""
        rec, vol, backend = self._snapshotter(spec, pool_name)
        known = {s.name for s in backend.list_snapshots(rec.current, vol)}
        if action == "create" and name in known:
            raise AlreadyExists(f"volume '{vol.name}' already has a snapshot '{name}'")
        if action != "create" and name not in known:
            raise NotFound(f"volume '{vol.name}' has no snapshot '{name}'",
                           hint=f"list them with: kvmpool vol-snapshot-list {vol.name} "
                                f"--pool {rec.name}")
        with self._pool_lock(rec):
            if action == "create":
                backend.create_snapshot(rec.current, vol, name, size)
            elif action == "revert":
                backend.revert_snapshot(rec.current, vol, name)
            else:
                backend.delete_snapshot(rec.current, vol, name)
        return vol

    def _snapshotter(
        self, spec: str, pool_name: str | None
    ) -> tuple[PoolRecord, VolumeDef, Snapshotter]:
        rec, vol = self.volume(spec, pool_name)
        caps.require_volume(rec.current, vol.target.format, Ability.SNAPSHOT)
        backend = self.backend(rec.current)
        assert isinstance(backend, Snapshotter)
        return rec, vol, backend


def _local_path(vol: VolumeDef) -> str:
    if vol.target.path is None or not vol.target.path.startswith("/"):
        raise Unsupported(f"volume '{vol.name}' has no local path to read or write")
    return vol.target.path
