"""The backend protocol: what every pool type implements, and the context it gets.

A backend is a thin driver for one pool type. It never touches the store or the CLI and
never decides "not supported": ``kvmpool.caps`` declares what each type can do and the
manager checks it before calling. Where libvirt treats a callback as a no-op (start/stop
of a dir pool), the backend method simply does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable

from kvmpool.copy import Progress
from kvmpool.host.run import Runner
from kvmpool.model import Auth, PoolDef, SecretRef, Snapshot, VolumeDef


class Overwrite(StrEnum):
    """pool-build's choice: plain build, ``--overwrite`` or ``--no-overwrite``."""

    DEFAULT = "default"
    OVERWRITE = "overwrite"
    NO_OVERWRITE = "no-overwrite"


@dataclass(frozen=True, slots=True)
class CreateOptions:
    prealloc_metadata: bool = False


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class Connections:
    """Open connections to remote storage (a Ceph cluster), kept for the life of one
    Manager and shared by every backend instance it makes: a command that looks a volume
    up, creates it and reads it back connects once. Keyed by what identifies the
    connection (monitors, user, a digest of the key); ``close`` ends them all."""

    def __init__(self) -> None:
        self._open: dict[Hashable, Closable] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        with self._lock:
            conn = self._open.get(key)
            if conn is None:
                conn = self._open[key] = make()
            return conn  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()


@dataclass(frozen=True, slots=True)
class Context:
    """What a backend may use: the runner (host commands and announced file changes),
    ``secret``: the value of the secret a pool's ``<auth>`` names (kvmpool.secrets), and
    ``connections``: remote connections shared by the backends of one manager."""

    runner: Runner
    cache_dir: str | None = None  # where backends may keep caches (kvmpool's run dir)
    secret: Callable[[Auth], bytes] | None = None
    # The value of a secret named by reference and usage type (a volume's passphrase).
    secret_ref: Callable[[SecretRef, str], bytes] | None = None
    connections: Connections = field(default_factory=Connections)


class Backend(Protocol):
    def check(self, pool: PoolDef) -> bool:
        """Is the pool usable on this system right now (e.g. its directory exists)?"""

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None: ...

    def start(self, pool: PoolDef) -> None: ...

    def stop(self, pool: PoolDef) -> None: ...

    def delete(self, pool: PoolDef) -> None: ...

    def refresh(self, pool: PoolDef) -> PoolDef:
        """The pool with its live facts filled in: capacity, allocation, available, perms."""

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        """Volumes with name, key, type and target path; sizes and formats when ``details``."""

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """One volume with every detail, or None."""

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None: ...

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None: ...


# ---------------------------------------------------------------- optional abilities
# A backend implements these only where caps.TABLE declares the ability; a unit test
# keeps the two in step.


class Reflink(StrEnum):
    """Clone's extent sharing: try it and fall back to a copy (AUTO), insist, or never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


@runtime_checkable
class Cloner(Protocol):
    def create_volume_from(
        self, pool: PoolDef, vol: VolumeDef, source: VolumeDef, *, reflink: Reflink,
        prealloc_metadata: bool, progress: Progress | None,
    ) -> None:
        """Create ``vol`` holding the data of ``source`` (which may live in another pool)."""


@runtime_checkable
class Resizer(Protocol):
    def resize_volume(
        self, pool: PoolDef, vol: VolumeDef, capacity: int, *, shrink: bool, allocate: bool
    ) -> None: ...


@runtime_checkable
class Wiper(Protocol):
    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None: ...


@runtime_checkable
class Snapshotter(Protocol):
    def list_snapshots(self, pool: PoolDef, vol: VolumeDef) -> list[Snapshot]: ...

    def create_snapshot(
        self, pool: PoolDef, vol: VolumeDef, name: str, size: int | None = None
    ) -> None:
        """``size``: the space of a classic (copy-on-write) snapshot, where that applies."""

    def revert_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None: ...

    def delete_snapshot(self, pool: PoolDef, vol: VolumeDef, name: str) -> None: ...


@runtime_checkable
class Stager(Protocol):
    """Network volumes (rbd) copied into a pool of another type: the volume's own backend
    makes it a local raw file for the destination to copy or convert, removed on exit if it
    is still there. A scratch file named with ``names.TEMP_PREFIX`` in the destination's
    own directory may be taken instead: moved into place as the new volume."""

    def staged_copy(self, pool: PoolDef, vol: VolumeDef, into: PoolDef,
                    progress: Progress | None) -> AbstractContextManager[VolumeDef]: ...


@runtime_checkable
class Transferer(Protocol):
    """vol-upload / vol-download for volumes with no local path (network volumes): the
    manager prefers this over its file-based transfer when a backend has it. Semantics as
    ``kvmpool.transfer``: ``source``/``dest`` are paths or ``-`` (stdin/stdout)."""

    def upload(
        self, pool: PoolDef, vol: VolumeDef, source: str, *, offset: int, length: int | None,
        sparse: bool, progress: Progress | None,
    ) -> int: ...

    def download(
        self, pool: PoolDef, vol: VolumeDef, dest: str, *, offset: int, length: int | None,
        sparse: bool, progress: Progress | None,
    ) -> int: ...


@runtime_checkable
class DeleteChecker(Protocol):
    """A backend that can tell, before anything is removed, that vol-delete would be
    refused (the volume is open, it has clones): with ``--delete-snapshots`` no snapshot
    is lost to a deletion that then fails."""

    def check_delete(self, pool: PoolDef, vol: VolumeDef, *, delete_snapshots: bool) -> None: ...
