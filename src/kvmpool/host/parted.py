"""Partition tables: parted argv builders, parted/sfdisk machine-output parsers, errors.

A disk pool reads its device twice, both in machine output:

- ``parted -s -m DEV unit B print free``: the label, the size, and every partition and
  free region in bytes (what libvirt's libvirt_parthelper gets from libparted);
- ``sfdisk --json DEV``: the partition type codes, which parted's machine output lacks
  (it cannot tell an extended partition from a FAT one, nor show an MBR type id).

It writes with ``parted -s DEV mklabel LABEL``, ``parted -s DEV mkpart TYPE [FS] SB EB
[set N FLAG on]`` and ``parted -s DEV rm N``.

Host commands it may run: parted (Debian package parted), sfdisk (fdisk).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, KvmpoolError, NotFound

PARTED_TIMEOUT = 120.0

# pool <format type> -> the label parted writes (libvirt: unknown and dos mean msdos)
LABELS: Mapping[str, str] = {
    "unknown": "msdos", "dos": "msdos", "gpt": "gpt", "dvh": "dvh", "mac": "mac",
    "bsd": "bsd", "pc98": "pc98", "sun": "sun",
}

# volume format -> parted's fs-type for mkpart, and a flag to set (libvirt maps lvm and
# raid to ext2 only; kvmpool also sets parted's lvm/raid flag so the type id is right)
PART_FS: Mapping[str, tuple[str | None, str | None]] = {
    "none": (None, None),
    "linux": ("ext2", None),
    "fat16": ("fat16", None),
    "fat32": ("fat32", None),
    "linux-swap": ("linux-swap", None),
    "linux-lvm": ("ext2", "lvm"),
    "linux-raid": ("ext2", "raid"),
    "extended": (None, None),
}

# MBR type ids and GPT type GUIDs -> the volume format libvirt names them with
DOS_TYPES: Mapping[str, str] = {
    "83": "linux", "82": "linux-swap", "8e": "linux-lvm", "fd": "linux-raid",
    "4": "fat16", "6": "fat16", "e": "fat16", "b": "fat32", "c": "fat32",
    "5": "extended", "f": "extended", "85": "extended",
}
GPT_TYPES: Mapping[str, str] = {
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "linux",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "linux-swap",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "linux-lvm",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "linux-raid",
}


def label_for(fmt: str | None) -> str:
    """The parted label for a disk pool's source format."""
    name = fmt or "unknown"
    if name not in LABELS:
        raise InvalidArgument(f"parted cannot write a '{name}' disk label",
                              hint="labels it can write: " + ", ".join(sorted(LABELS)))
    return LABELS[name]


# ------------------------------------------------------------------ argv


def print_argv(device: str) -> list[str]:
    """>>> print_argv("/dev/sdb")
    ['parted', '-s', '-m', '/dev/sdb', 'unit', 'B', 'print', 'free']
    """
    return ["parted", "-s", "-m", device, "unit", "B", "print", "free"]


def sfdisk_argv(device: str) -> list[str]:
    """>>> sfdisk_argv("/dev/sdb")
    ['sfdisk', '--json', '/dev/sdb']
    """
    return ["sfdisk", "--json", device]


def mklabel_argv(device: str, label: str) -> list[str]:
    """>>> mklabel_argv("/dev/sdb", "gpt")
    ['parted', '-s', '/dev/sdb', 'mklabel', 'gpt']
    """
    return ["parted", "-s", device, "mklabel", label]


def mkpart_argv(device: str, part_type: str, fs_type: str | None, start: int, end: int,
                *, number: int | None = None, flag: str | None = None) -> list[str]:
    """``end`` is the last byte of the partition (parted's inclusive end).

    >>> mkpart_argv("/dev/sdb", "primary", "ext2", 1048576, 2097151, number=1, flag="lvm")
    ['parted', '-s', '/dev/sdb', 'mkpart', 'primary', 'ext2', '1048576B', '2097151B', \
'set', '1', 'lvm', 'on']
    """
    argv = ["parted", "-s", device, "mkpart", part_type]
    if fs_type:
        argv.append(fs_type)
    argv += [f"{start}B", f"{end}B"]
    if flag:
        if number is None:
            raise ValueError("setting a flag needs the partition number")
        argv += ["set", str(number), flag, "on"]
    return argv


def rm_argv(device: str, number: int) -> list[str]:
    """>>> rm_argv("/dev/sdb", 2)
    ['parted', '-s', '/dev/sdb', 'rm', '2']
    """
    return ["parted", "-s", device, "rm", str(number)]


# ------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class Region:
    """A partition or a free region; ``end`` is exclusive (start + size)."""

    number: int | None  # None for free space
    start: int
    end: int
    fs: str = ""  # what parted finds inside (ext4, linux-swap(v1), ...)
    name: str = ""  # gpt partition name
    flags: tuple[str, ...] = ()

    @property
    def free(self) -> bool:
        return self.number is None

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Table:
    device: str
    size: int
    transport: str
    logical_sector: int
    physical_sector: int
    label: str  # msdos, gpt, loop (no table: a file system on the whole disk), unknown
    model: str
    regions: tuple[Region, ...]

    @property
    def partitions(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if not r.free)

    @property
    def free(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if r.free)


@dataclass(frozen=True, slots=True)
class PartType:
    """One partition as sfdisk sees it: the type code kvmpool names the volume format by."""

    node: str
    start: int  # bytes
    size: int  # bytes
    type: str  # "83", "f" (MBR) or a GUID (GPT)


# ------------------------------------------------------------------ parsers


def _bytes(field: str) -> int:
    if not field.endswith("B"):
        raise ValueError(f"not a byte count: {field!r}")
    return int(field[:-1])


# parted -s -m /dev/loop0 unit B print free   (a gpt disk with two partitions)
#   BYT;
#   /dev/loop0:134217728B:loopback:512:512:gpt:Loopback device:;
#   1:17408B:1048575B:1031168B:free;
#   1:1048576B:11534335B:10485760B::primary:;
#   2:11534336B:22020095B:10485760B:ext4:primary:lvm;
#   1:22020096B:134200831B:112180736B:free;
# (msdos: "5:12582912B:20971519B:8388608B:::swap;" - the name field is empty.)
# Free rows carry a meaningless number; ends are inclusive.
def parse_print(text: str) -> Table:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].rstrip(";") not in ("BYT", "CHS", "CYL"):
        raise ValueError("not parted machine output")
    head = lines[1].rstrip(";").split(":") if len(lines) > 1 else []
    if len(head) < 7:
        raise ValueError("parted printed no disk line")
    regions: list[Region] = []
    for line in lines[2:]:
        fields = line.rstrip(";").split(":")
        if len(fields) < 5:
            continue
        start, end = _bytes(fields[1]), _bytes(fields[2]) + 1
        if fields[4] == "free":
            regions.append(Region(None, start, end))
            continue
        flags = tuple(f.strip() for f in fields[6].split(",") if f.strip()) if len(
            fields) > 6 else ()
        regions.append(Region(int(fields[0]), start, end, fs=fields[4],
                              name=fields[5] if len(fields) > 5 else "", flags=flags))
    return Table(device=head[0], size=_bytes(head[1]), transport=head[2],
                 logical_sector=int(head[3]), physical_sector=int(head[4]), label=head[5],
                 model=head[6], regions=tuple(regions))


# sfdisk --json /dev/loop0   (a dos disk: a primary, an extended holding a logical)
#   {
#      "partitiontable": {
#         "label": "dos", "id": "0x3d058f53", "device": "/dev/loop0", "unit": "sectors",
#         "sectorsize": 512,
#         "partitions": [
#            {"node": "/dev/loop0p1", "start": 2048, "size": 20480, "type": "83"},
#            {"node": "/dev/loop0p2", "start": 22528, "size": 94660, "type": "f"},
#            {"node": "/dev/loop0p5", "start": 24576, "size": 16384, "type": "82"}
#         ]
#      }
#   }
# (gpt adds "firstlba", "lastlba", and per partition "uuid", "name"; "type" is a GUID.)
def parse_sfdisk(text: str) -> list[PartType]:
    doc = json.loads(text)
    table = doc.get("partitiontable", {}) if isinstance(doc, Mapping) else {}
    sector = int(table.get("sectorsize", 512))
    parts: list[PartType] = []
    for row in table.get("partitions", []):
        parts.append(PartType(node=str(row["node"]), start=int(row["start"]) * sector,
                              size=int(row["size"]) * sector, type=str(row["type"])))
    return parts


def format_of(part_type: str) -> str:
    """The volume format a partition's type code stands for ('none' when no match)."""
    key = part_type.lower().removeprefix("0x")
    return DOS_TYPES.get(key) or GPT_TYPES.get(part_type.upper()) or "none"


# ------------------------------------------------------------------ names


def partition_name(disk: str, number: int) -> str:
    """The kernel's name for partition ``number`` of ``disk``: 'p' after a trailing digit.

    >>> partition_name("sdb", 1), partition_name("nvme0n1", 2), partition_name("loop0", 1)
    ('sdb1', 'nvme0n1p2', 'loop0p1')
    """
    return f"{disk}p{number}" if disk[-1:].isdigit() else f"{disk}{number}"


def partition_number(disk: str, name: str) -> int | None:
    """The inverse of ``partition_name``, or None when ``name`` is no partition of ``disk``."""
    prefix = f"{disk}p" if disk[-1:].isdigit() else disk
    rest = name.removeprefix(prefix) if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() and not rest.startswith("0") else None


# ------------------------------------------------------------------ errors


def classify(err: HostCommandFailed, *, device: str) -> KvmpoolError:
    text = err.stderr
    if "unable to inform the kernel" in text or "being used" in text or "busy" in text:
        return InUse(f"the partition table of {device} is in use (a partition is mounted "
                     "or held)", hint="unmount or release its partitions first")
    if "Could not stat device" in text or "No such file or directory" in text:
        return NotFound(f"device path '{device}' doesn't exist")
    if "unrecognised disk label" in text:
        return InvalidArgument(f"{device} has no partition table kvmpool can read",
                               hint="build the pool to write one")
    if "outside of the device" in text or "overlapping" in text:
        return InvalidArgument(f"no room for that partition on {device}")
    return err


def by_number(regions: Sequence[Region], number: int) -> Region | None:
    for region in regions:
        if region.number == number:
            return region
    return None
