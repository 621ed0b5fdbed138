"""Values that describe pools and volumes: frozen dataclasses, shaped like libvirt's XML.

A ``PoolDef`` is what ``<pool>`` says; a ``VolumeDef`` is what ``<volume>`` says. Both are
plain values: the XML layer (``kvmpool.xml``) turns them into documents and back, backends
fill in the runtime facts (sizes, paths, keys) with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PoolType(StrEnum):
    DIR = "dir"
    FS = "fs"
    NETFS = "netfs"
    LOGICAL = "logical"
    DISK = "disk"
    ISCSI = "iscsi"
    ISCSI_DIRECT = "iscsi-direct"
    SCSI = "scsi"
    MPATH = "mpath"
    RBD = "rbd"
    SHEEPDOG = "sheepdog"
    GLUSTER = "gluster"
    ZFS = "zfs"
    VSTORAGE = "vstorage"


class VolType(StrEnum):
    FILE = "file"
    BLOCK = "block"
    DIR = "dir"
    NETWORK = "network"
    NETDIR = "netdir"
    PLOOP = "ploop"


class PoolState(StrEnum):
    """Pool states as ``virsh pool-list --details`` names them."""

    INACTIVE = "inactive"
    BUILDING = "building"
    RUNNING = "running"
    DEGRADED = "degraded"
    INACCESSIBLE = "inaccessible"


# ---------------------------------------------------------------- shared pieces


@dataclass(frozen=True, slots=True)
class Permissions:
    """``<permissions>``: mode is an int (printed as ``0%o``), owner/group decimal ids."""

    mode: int | None = None
    owner: int | None = None
    group: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``<secret uuid=.../>`` or ``<secret usage=.../>`` (with an optional ``type``)."""

    uuid: str | None = None
    usage: str | None = None
    type: str | None = None


# ---------------------------------------------------------------- pools


@dataclass(frozen=True, slots=True)
class SourceHost:
    name: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class FreeExtent:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SourceDevice:
    path: str
    part_separator: bool | None = None
    free_extents: tuple[FreeExtent, ...] = ()


@dataclass(frozen=True, slots=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int


@dataclass(frozen=True, slots=True)
class Adapter:
    """``<adapter>`` of scsi pools: ``scsi_host`` (name or parentaddr) or ``fc_host``."""

    type: str | None = None  # "scsi_host" | "fc_host" | None (legacy name-only form)
    name: str | None = None
    parent: str | None = None
    parent_wwnn: str | None = None
    parent_wwpn: str | None = None
    parent_fabric_wwn: str | None = None
    managed: bool | None = None
    wwnn: str | None = None
    wwpn: str | None = None
    unique_id: int | None = None
    parent_address: PciAddress | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    type: str  # "chap" | "ceph"
    username: str
    secret: SecretRef


@dataclass(frozen=True, slots=True)
class PoolSource:
    hosts: tuple[SourceHost, ...] = ()
    devices: tuple[SourceDevice, ...] = ()
    dir: str | None = None
    adapter: Adapter | None = None
    name: str | None = None
    initiator_iqn: str | None = None
    format: str | None = None
    auth: Auth | None = None
    protocol_ver: str | None = None
    vendor: str | None = None
    product: str | None = None


@dataclass(frozen=True, slots=True)
class PoolTarget:
    path: str | None = None
    permissions: Permissions | None = None


@dataclass(frozen=True, slots=True)
class ThinUsage:
    """Runtime facts of an LVM thin pool (``<kvmpool:thin>``; printed, never parsed).

    ``provisioned``: bytes promised to the thin volumes (sum of their virtual sizes);
    ``data_used``: bytes of the thin pool's data LV in use; the percentages as lvs
    reports ``data_percent`` / ``metadata_percent`` (0.0 to 100.0).
    """

    provisioned: int
    data_used: int
    data_percent: float
    metadata_percent: float


@dataclass(frozen=True, slots=True)
class PoolDef:
    """A ``<pool>`` document. capacity/allocation/available are runtime facts (never parsed).

    ``thin_pool`` and ``thin`` come from kvmpool's own XML namespace (``kvmpool.xml``):
    ``thin_pool`` binds a logical pool to the LVM thin pool LV of that name in its volume
    group (its volumes are thin LVs); ``thin`` holds that thin pool's runtime usage.
    """

    type: PoolType
    name: str
    uuid: str
    source: PoolSource = field(default_factory=PoolSource)
    target: PoolTarget = field(default_factory=PoolTarget)
    cow: bool | None = None  # <features><cow state='yes|no'/>
    refresh_vol_allocation: str | None = None  # <refresh><volume allocation='default|capacity'/>
    fs_mount_opts: tuple[str, ...] = ()  # fs namespace <fs:mount_opts>
    rbd_config_opts: tuple[tuple[str, str], ...] = ()  # rbd namespace <rbd:config_opts>
    capacity: int = 0
    allocation: int = 0
    available: int = 0
    thin_pool: str | None = None  # kvmpool namespace <kvmpool:thinpool name=...> (logical)
    thin: ThinUsage | None = None  # kvmpool namespace <kvmpool:thin .../> (runtime, not parsed)


# ---------------------------------------------------------------- volumes


@dataclass(frozen=True, slots=True)
class Extent:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ExtentDevice:
    path: str
    extents: tuple[Extent, ...] = ()


@dataclass(frozen=True, slots=True)
class Timestamps:
    """Each value as libvirt prints it: ``sec`` or ``sec.nnnnnnnnn``."""

    atime: str | None = None
    mtime: str | None = None
    ctime: str | None = None
    btime: str | None = None


@dataclass(frozen=True, slots=True)
class Cipher:
    name: str
    size: int
    mode: str | None = None
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class Ivgen:
    name: str
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class Encryption:
    format: str  # "luks" | "qcow" | "default" ...
    secret: SecretRef | None = None
    cipher: Cipher | None = None
    ivgen: Ivgen | None = None
    engine: str | None = None  # "qemu" | "librbd" | None (libvirt's default engine)


@dataclass(frozen=True, slots=True)
class VolTarget:
    """``<target>`` of a volume, and also the shape of ``<backingStore>``."""

    path: str | None = None
    format: str | None = None
    permissions: Permissions | None = None
    timestamps: Timestamps | None = None
    encryption: Encryption | None = None
    compat: str | None = None
    cluster_size: int | None = None  # bytes
    nocow: bool = False
    lazy_refcounts: bool = False
    extended_l2: bool = False
    has_features: bool = False  # <features> present (even empty)


@dataclass(frozen=True, slots=True)
class VolumeDef:
    name: str
    type: VolType = VolType.FILE
    key: str | None = None
    capacity: int | None = None  # None only while parsing clone/create-from input
    allocation: int | None = None  # None: "same as capacity" (libvirt's has_allocation=false)
    physical: int = 0
    source: tuple[ExtentDevice, ...] = ()
    target: VolTarget = field(default_factory=VolTarget)
    backing_store: VolTarget | None = None
    problem: str | None = None  # why the image looks damaged (not in libvirt's XML)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A volume snapshot, whatever keeps it (qcow2 internal, LVM, thin, Ceph)."""

    name: str
    created: str | None = None  # ISO 8601, UTC
    size: int | None = None  # bytes the snapshot holds (VM state / COW space)
    origin: str | None = None  # the volume it belongs to
    fill: float | None = None  # percent of its space used (classic LVM snapshots)
    valid: bool = True  # False for a full (invalidated) classic snapshot
