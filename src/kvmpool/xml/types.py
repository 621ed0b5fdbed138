"""Per pool type: what ``<source>`` needs, which formats exist, and the volume format enum.

This is libvirt's ``poolTypeInfo`` table (``src/conf/storage_conf.c``) restated as data.
``SourceNeeds`` flags say which source parts a type uses; they decide both the checks at
parse time and which parts ``format_pool`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto

from kvmpool.model import PoolType


class SourceNeeds(Flag):
    NONE = 0
    HOST = auto()
    DEVICE = auto()
    DIR = auto()
    ADAPTER = auto()
    NAME = auto()
    INITIATOR_IQN = auto()
    NETWORK = auto()  # not a local block device or file: no <target>


FS_FORMATS = (
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf",
    "gfs", "gfs2", "vfat", "hfs+", "xfs", "ocfs2", "vmfs", "btrfs",
)  # fmt: skip
#: fs pool formats kvmpool accepts that libvirt's parser and schema lack (btrfs).
POOL_SCHEMA_DEVIATIONS = frozenset({"btrfs"})
NETFS_FORMATS = ("auto", "nfs", "glusterfs", "cifs")
DISK_FORMATS = ("unknown", "dos", "dvh", "gpt", "mac", "bsd", "pc98", "sun", "lvm2")
LOGICAL_FORMATS = ("unknown", "lvm2")

#: libvirt's file formats (``virStorageFileFormat`` without ``none``), then ``luks`` (in
#: libvirt's schema, not in its 9.0 parser), then the two qemu names libvirt lacks.
FILE_VOL_FORMATS = (
    "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk", "luks", "vhdx", "parallels",
)  # fmt: skip
#: Formats kvmpool prints that libvirt's RelaxNG schema does not know.
SCHEMA_DEVIATIONS = frozenset({"vhdx", "parallels"})
DISK_VOL_FORMATS = (
    "none", "linux", "fat16", "fat32", "linux-swap", "linux-lvm", "linux-raid", "extended",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TypeInfo:
    needs: SourceNeeds = SourceNeeds.NONE
    source_formats: tuple[str, ...] = ()  # empty: no <format> in <source>
    default_source_format: str | None = None
    vol_formats: tuple[str, ...] = ()  # empty: no <format> in a volume's <target>
    default_vol_format: str | None = None

    @property
    def has_target(self) -> bool:
        return SourceNeeds.NETWORK not in self.needs


_N = SourceNeeds


def _files(
    needs: SourceNeeds = SourceNeeds.NONE,
    source_formats: tuple[str, ...] = (),
    default_source_format: str | None = None,
) -> TypeInfo:
    """A type whose volumes are image files (raw by default)."""
    return TypeInfo(needs, source_formats, default_source_format, FILE_VOL_FORMATS, "raw")


TYPE_INFO: dict[PoolType, TypeInfo] = {
    PoolType.LOGICAL: TypeInfo(_N.NAME | _N.DEVICE, LOGICAL_FORMATS, "lvm2"),
    PoolType.DIR: _files(),
    PoolType.FS: _files(_N.DEVICE, FS_FORMATS, "auto"),
    PoolType.NETFS: _files(_N.HOST | _N.DIR, NETFS_FORMATS, "auto"),
    PoolType.ISCSI: TypeInfo(_N.HOST | _N.DEVICE | _N.INITIATOR_IQN),
    PoolType.ISCSI_DIRECT: TypeInfo(_N.HOST | _N.DEVICE | _N.NETWORK | _N.INITIATOR_IQN),
    PoolType.SCSI: TypeInfo(_N.ADAPTER),
    PoolType.MPATH: TypeInfo(),
    PoolType.RBD: _files(_N.HOST | _N.NETWORK | _N.NAME),
    PoolType.SHEEPDOG: TypeInfo(_N.HOST | _N.NETWORK | _N.NAME),
    PoolType.GLUSTER: _files(_N.HOST | _N.NETWORK | _N.NAME | _N.DIR),
    PoolType.DISK: TypeInfo(_N.DEVICE, DISK_FORMATS, "unknown", DISK_VOL_FORMATS, "none"),
    PoolType.ZFS: TypeInfo(_N.NAME | _N.DEVICE),
    PoolType.VSTORAGE: _files(_N.NAME),
}


def type_info(pool_type: PoolType) -> TypeInfo:
    return TYPE_INFO[pool_type]
