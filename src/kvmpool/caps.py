"""What each pool type can do: the one table the manager checks before calling a backend.

``Unsupported`` is raised here and nowhere else, with a sentence that names the pool and
the operation, so backends never need to say "not supported" themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kvmpool.errors import Unsupported
from kvmpool.model import PoolDef, PoolType
from kvmpool.xml.types import DISK_VOL_FORMATS


class Ability(StrEnum):
    """What a pool type may do; the value completes "pool 'x' (type) cannot ..."."""

    BUILD = "build"
    DELETE = "delete"
    CREATE_VOLUME = "create volumes"
    DELETE_VOLUME = "delete volumes"
    CLONE = "clone volumes"
    RESIZE = "resize volumes"
    WIPE = "wipe volumes"
    UPLOAD = "upload to volumes"
    DOWNLOAD = "download volumes"
    SNAPSHOT = "snapshot volumes"


# vol-wipe's algorithms, as libvirt names them (scrub's patterns, plus zero and trim).
WIPE_ALGORITHMS = ("zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7",
                   "pfitzner33", "random", "trim")

# Block devices a pool lists but does not own (LUNs, multipath maps): no trim (libvirt's
# wipe of these has none either).
LUN_WIPE_ALGORITHMS = tuple(a for a in WIPE_ALGORITHMS if a != "trim")

FILE_FORMATS = ("raw", "qcow2", "qcow", "qed", "vmdk", "vpc", "vdi", "vhdx", "dir")
# Formats a file pool can create with qemu-img (raw and dir are made in-process).
QEMU_IMG_FORMATS = frozenset({"qcow2", "qcow", "qed", "vmdk", "vpc", "vdi", "vhdx"})


@dataclass(frozen=True, slots=True)
class TypeCaps:
    abilities: frozenset[Ability]
    vol_formats: tuple[str, ...]  # formats volumes can be created in; first is the default
    has_backend: bool
    # Abilities that only some volume formats have (absent: every format).
    by_format: Mapping[Ability, frozenset[str]] = field(default_factory=dict)
    wipe_algorithms: tuple[str, ...] = WIPE_ALGORITHMS


_FILE = TypeCaps(
    frozenset(Ability),
    FILE_FORMATS,
    True,
    {
        Ability.SNAPSHOT: frozenset({"qcow2"}),
        Ability.RESIZE: frozenset({"raw", "qcow2", "qcow", "qed", "vmdk", "vpc", "vdi", "vhdx"}),
        Ability.CLONE: frozenset({"raw", "iso", "qcow2", "qcow", "qed", "vmdk", "vpc", "vdi",
                                  "vhdx", "cow", "parallels", "dmg", "bochs", "cloop", "luks"}),
    },
)

TABLE: dict[PoolType, TypeCaps] = {
    PoolType.DIR: _FILE,
    PoolType.FS: _FILE,
    PoolType.NETFS: _FILE,  # NFS and CIFS mounts; glusterfs refused below (REFUSED_FORMATS)
    PoolType.DISK: TypeCaps(frozenset({Ability.BUILD, Ability.DELETE, Ability.CREATE_VOLUME, Ability.DELETE_VOLUME}), DISK_VOL_FORMATS, True),  # noqa: E501
    # LVs have no format: volumes are raw block devices; every ability, any LV.
    PoolType.LOGICAL: TypeCaps(frozenset(Ability), (), True),
    # LUNs through QEMU's initiator: data moves with qemu-img; zero is libvirt's one wipe here.
    PoolType.ISCSI_DIRECT: TypeCaps(frozenset({Ability.WIPE, Ability.UPLOAD, Ability.DOWNLOAD}), (), True, wipe_algorithms=("zero",)),  # noqa: E501
    PoolType.ISCSI: TypeCaps(frozenset({Ability.WIPE, Ability.UPLOAD, Ability.DOWNLOAD}), (), True, wipe_algorithms=LUN_WIPE_ALGORITHMS),  # noqa: E501
    # SCSI LUNs: listed, written in place; no trim (libvirt neither).
    PoolType.SCSI: TypeCaps(frozenset({Ability.WIPE, Ability.UPLOAD, Ability.DOWNLOAD}), (), True, wipe_algorithms=LUN_WIPE_ALGORITHMS),  # noqa: E501
    PoolType.MPATH: TypeCaps(frozenset({Ability.WIPE, Ability.UPLOAD, Ability.DOWNLOAD}), (), True, wipe_algorithms=LUN_WIPE_ALGORITHMS),  # noqa: E501
    # Ceph images: raw only, no pool build/delete (the Ceph admin's job), wipe zero/trim.
    PoolType.RBD: TypeCaps(frozenset(Ability) - {Ability.BUILD, Ability.DELETE}, ("raw",), True, wipe_algorithms=("zero", "trim")),  # noqa: E501
}

_NONE = TypeCaps(frozenset(), (), False)

# Pool types whose sources kvmpool can look for (find-storage-pool-sources).
DISCOVERY = frozenset({PoolType.ISCSI, PoolType.ISCSI_DIRECT, PoolType.NETFS, PoolType.LOGICAL})

# Source formats kvmpool will not run although it manages the type: (why, what instead).
REFUSED_FORMATS: dict[tuple[PoolType, str], tuple[str, str]] = {
    (PoolType.NETFS, "glusterfs"): (
        "kvmpool does not mount GlusterFS (end-of-life upstream)",
        "mount the volume yourself and define a dir pool on the mount point"),
}


def caps(pool_type: PoolType) -> TypeCaps:
    return TABLE.get(pool_type, _NONE)


def require_backend(pool: PoolDef) -> None:
    if not caps(pool.type).has_backend:
        raise Unsupported(
            f"pool '{pool.name}' is of type '{pool.type}', which this kvmpool cannot manage yet",
            hint="its definition is kept and can be edited, listed and dumped",
        )
    refused = REFUSED_FORMATS.get((pool.type, pool.source.format or ""))
    if refused is not None:
        why, instead = refused
        raise Unsupported(f"pool '{pool.name}' ({pool.type}, format {pool.source.format}): "
                          f"{why}", hint=instead)


def require(pool: PoolDef, ability: Ability) -> None:
    require_backend(pool)
    if ability not in caps(pool.type).abilities:
        raise Unsupported(f"pool '{pool.name}' ({pool.type}) cannot {ability}")


def require_discovery(pool_type: PoolType) -> None:
    if pool_type not in DISCOVERY:
        raise Unsupported(f"pool type '{pool_type}' does not support source discovery")


def require_format(pool: PoolDef, fmt: str) -> None:
    formats = caps(pool.type).vol_formats
    if fmt not in formats:
        raise Unsupported(
            f"pool '{pool.name}' ({pool.type}) cannot create {fmt} volumes",
            hint="formats it can create: " + ", ".join(formats),
        )


def require_wipe_algorithm(pool: PoolDef, algorithm: str) -> None:
    known = caps(pool.type).wipe_algorithms
    if algorithm not in known:
        raise Unsupported(f"pool '{pool.name}' ({pool.type}) cannot wipe with '{algorithm}'",
                          hint="algorithms it has: " + ", ".join(known))


def require_volume(pool: PoolDef, fmt: str | None, ability: Ability) -> None:
    """``require`` plus the format rule: "pool 'p' (dir) cannot snapshot raw volumes"."""
    require(pool, ability)
    formats = caps(pool.type).by_format.get(ability)
    if formats is not None and (fmt or "raw") not in formats:
        verb = ability.value.removesuffix(" volumes")
        raise Unsupported(f"pool '{pool.name}' ({pool.type}) cannot {verb} {fmt} volumes",
                          hint="formats it can: " + ", ".join(sorted(formats)))
