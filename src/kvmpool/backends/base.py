"""The backend protocol: what every pool type implements, and the context it gets.

A backend is a thin driver for one pool type. It never touches the store or the CLI and
never decides "not supported": ``kvmpool.caps`` declares what each type can do and the
manager checks it before calling. Where libvirt treats a callback as a no-op (start/stop
of a dir pool), the backend method simply does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

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


@dataclass(frozen=True, slots=True)
class Context:
    """What a backend may use: the runner (host commands and announced file changes), and
    ``secret``: the value of the secret a pool's ``<auth>`` names (kvmpool.secrets)."""

    runner: Runner
    cache_dir: str | None = None  # where backends may keep caches (kvmpool's run dir)
    secret: Callable[[Auth], bytes] | None = None
    # The value of a secret named by reference and usage type (a volume's passphrase).
    secret_ref: Callable[[SecretRef, str], bytes] | None = None


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
