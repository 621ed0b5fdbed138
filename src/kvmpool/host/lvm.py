"""lvm2: pure argv builders, pure JSON report parsers, an error classifier, and ``Lvm``.

The layers, from the bottom:

- ``pvcreate_argv`` ... ``lvs_argv``: build argv tuples. No I/O; golden-tested.
- ``parse_pvs`` / ``parse_vgs`` / ``parse_lvs``: read ``--reportformat json --units b
  --nosuffix`` output (every value is a string there) into frozen records. No I/O.
- ``classify``: turns a failed command's stderr into the ``kvmpool.errors`` class a user
  can act on (NotFound, AlreadyExists, InUse, InvalidArgument), after dropping the
  warnings LVM prints on healthy hosts (``harmless``).
- ``Lvm``: a thin object that runs the builders through a ``Runner`` (timeout on every
  call) and parses. It is the only part that touches the host.

Host commands it may run: pvcreate, pvremove, pvs, vgcreate, vgchange, vgremove, vgs,
lvcreate, lvremove, lvrename, lvresize, lvconvert, lvchange, lvs (Debian package lvm2).

Sizes are always passed in bytes (``NNNb``); LVM rounds them up to whole extents.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kvmpool.errors import (
    AlreadyExists,
    HostCommandFailed,
    InUse,
    InvalidArgument,
    KvmpoolError,
    NotFound,
    ToolMissing,
)
from kvmpool.host.run import Completed, Runner

log = logging.getLogger(__name__)

PACKAGE = "lvm2"

# Turns off LVM's udev synchronisation for hosts (or test VMs) where udev cannot be
# trusted to answer: with a dead udevd, lvcreate otherwise waits forever. Pass it as
# ``Lvm(config=NO_UDEV_CONFIG)`` only when the caller knows it needs it.
NO_UDEV_CONFIG = "activation { udev_sync=0 udev_rules=0 }"

REPORT_OPTIONS = ("--reportformat", "json", "--units", "b", "--nosuffix")

PV_FIELDS = ("pv_name", "vg_name", "pv_uuid", "pv_size", "pv_free", "pv_fmt", "pv_attr")
VG_FIELDS = (
    "vg_name",
    "vg_uuid",
    "vg_size",
    "vg_free",
    "vg_extent_size",
    "vg_extent_count",
    "vg_free_count",
    "pv_count",
    "lv_count",
    "vg_attr",
)
LV_FIELDS = (
    "lv_name",
    "vg_name",
    "lv_uuid",
    "lv_path",
    "lv_size",
    "lv_attr",
    "origin",
    "origin_size",
    "pool_lv",
    "data_percent",
    "metadata_percent",
    "segtype",
    "seg_start",
    "seg_size",
    "stripes",
    "devices",
    "vg_extent_size",
    "lv_time",
)

# LVM object names: letters, digits and ``+_.-``, not starting with '-' (see lvm(8), VALID
# NAMES). Checked here so that a name can never be read as an option.
_NAME_RE = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class PhysicalVolume:
    name: str  # device path, e.g. /dev/vda
    vg: str  # "" for a PV in no volume group
    uuid: str
    size: int
    free: int
    fmt: str  # "lvm2"
    attr: str  # e.g. "a--"


@dataclass(frozen=True, slots=True)
class VolumeGroup:
    name: str
    uuid: str
    size: int
    free: int
    extent_size: int
    extent_count: int
    free_count: int
    pv_count: int
    lv_count: int
    attr: str  # e.g. "wz--n-"


@dataclass(frozen=True, slots=True)
class SegmentDevice:
    """One stripe of a segment: ``/dev/vda(25)`` -> path '/dev/vda', first extent 25.

    For a thin pool the "device" is its hidden data LV (``pool_tdata(0)``).
    """

    path: str
    first_extent: int


@dataclass(frozen=True, slots=True)
class Segment:
    start: int  # bytes, offset inside the LV
    size: int  # bytes
    segtype: str  # linear, striped, thin, thin-pool, zero, ...
    stripes: int
    devices: tuple[SegmentDevice, ...]


@dataclass(frozen=True, slots=True)
class LogicalVolume:
    """One LV from ``lvs`` (all of its segments merged into one record).

    ``attr`` is lvs' 10-character lv_attr; the properties below decode the parts kvmpool
    uses (lvs(8), "lv_attr bits").
    """

    name: str
    vg: str
    uuid: str
    path: str  # "" for LVs that have no device node (thin pools, hidden LVs)
    size: int  # bytes; for a thin LV its virtual size
    attr: str
    origin: str  # snapshot origin; "[x_vorigin]" for a sparse LV
    pool_lv: str  # thin pool of a thin LV
    data_percent: float | None
    metadata_percent: float | None
    extent_size: int
    segments: tuple[Segment, ...]
    origin_size: int = 0  # bytes of the origin (a sparse LV's virtual size)
    created: str | None = None  # when the LV was made (lv_time), ISO 8601 in UTC

    @property
    def segtype(self) -> str:
        return self.segments[0].segtype if self.segments else ""

    @property
    def devices(self) -> tuple[str, ...]:
        """Devices the LV's extents live on, in order, without repeats."""
        seen: dict[str, None] = {}
        for seg in self.segments:
            for dev in seg.devices:
                seen.setdefault(dev.path, None)
        return tuple(seen)

    @property
    def volume_type(self) -> str:
        return self.attr[0:1]

    @property
    def active(self) -> bool:
        return self.attr[4:5] == "a"

    @property
    def open(self) -> bool:
        return self.attr[5:6] == "o"

    @property
    def skip_activation(self) -> bool:
        """Set on thin snapshots: activate them with ``lvchange -ay -K``."""
        return self.attr[9:10] == "k"

    @property
    def hidden(self) -> bool:
        return self.name.startswith("[")

    @property
    def is_thin_pool(self) -> bool:
        return self.volume_type == "t"

    @property
    def is_thin(self) -> bool:
        return self.volume_type == "V"

    @property
    def is_snapshot(self) -> bool:
        """A classic (COW) snapshot, merging or not; sparse LVs are such snapshots too."""
        return self.volume_type in ("s", "S")

    @property
    def is_thin_snapshot(self) -> bool:
        return self.is_thin and self.origin != ""

    @property
    def is_sparse(self) -> bool:
        """libvirt's sparse LV: a classic snapshot of a hidden virtual (zero) origin."""
        return self.is_snapshot and self.origin.startswith("[")

    @property
    def is_origin(self) -> bool:
        return self.volume_type in ("o", "O")

    @property
    def merging(self) -> bool:
        return self.volume_type in ("O", "S")

    @property
    def backing(self) -> str | None:
        """The origin LV name a snapshot was taken of, if it is a visible LV."""
        if self.origin and not self.origin.startswith("["):
            return self.origin
        return None


# --------------------------------------------------------------------------- builders


def _name(kind: str, value: str) -> str:
    if not _NAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidArgument(
            f"invalid {kind} name {value!r}",
            hint="LVM names use letters, digits and + _ . - and may not start with '-'",
        )
    return value


def _device(path: str) -> str:
    if not path.startswith("/") or "\n" in path:
        raise InvalidArgument(f"invalid device path {path!r}", hint="give an absolute path")
    return path


def _devices(paths: Iterable[str]) -> tuple[str, ...]:
    result = tuple(_device(p) for p in paths)
    if not result:
        raise InvalidArgument("no devices given")
    return result


def _size(value: int, what: str = "size") -> str:
    """Bytes as an LVM size argument, rounded up to whole 512-byte sectors."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgument(f"invalid {what}: {value!r}", hint="give a positive byte count")
    return f"{-(-value // 512) * 512}b"


def _lv(vg: str, name: str) -> str:
    return f"{_name('volume group', vg)}/{_name('logical volume', name)}"


def with_config(argv: Sequence[str], config: str | None) -> tuple[str, ...]:
    """Insert ``--config CONFIG`` after the command name (every lvm command takes it)."""
    if not config:
        return tuple(argv)
    return (argv[0], "--config", config, *argv[1:])


def pvcreate_argv(devices: Iterable[str]) -> tuple[str, ...]:
    return ("pvcreate", *_devices(devices))


def pvremove_argv(devices: Iterable[str], *, force: bool = False) -> tuple[str, ...]:
    extra = ("-ff", "--yes") if force else ()
    return ("pvremove", *extra, *_devices(devices))


def vgcreate_argv(
    vg: str, devices: Iterable[str], *, extent_size: int | None = None
) -> tuple[str, ...]:
    extra = ("--physicalextentsize", _size(extent_size, "extent size")) if extent_size else ()
    return ("vgcreate", *extra, _name("volume group", vg), *_devices(devices))


def vgchange_argv(vg: str, *, active: bool) -> tuple[str, ...]:
    return ("vgchange", "-aly" if active else "-aln", _name("volume group", vg))


def vgremove_argv(vg: str) -> tuple[str, ...]:
    return ("vgremove", "-f", _name("volume group", vg))


def lvcreate_linear_argv(vg: str, name: str, size: int) -> tuple[str, ...]:
    return (
        "lvcreate", "--yes", "--name", _name("logical volume", name),
        "-L", _size(size), _name("volume group", vg),
    )  # fmt: skip


def lvcreate_sparse_argv(vg: str, name: str, capacity: int, allocation: int) -> tuple[str, ...]:
    """libvirt's sparse LV: a snapshot of a virtual zero origin of ``capacity`` bytes
    whose copy-on-write store has ``allocation`` bytes (at least one sector)."""
    return (
        "lvcreate", "--yes", "--name", _name("logical volume", name),
        "-L", _size(max(allocation, 512), "allocation"),
        "--type", "snapshot", "--virtualsize", _size(capacity, "capacity"),
        _name("volume group", vg),
    )  # fmt: skip


def lvcreate_thin_pool_argv(
    vg: str, name: str, size: int, *, metadata_size: int | None = None
) -> tuple[str, ...]:
    extra = ("--poolmetadatasize", _size(metadata_size, "metadata size")) if metadata_size else ()
    return (
        "lvcreate", "--yes", "--type", "thin-pool", "--name", _name("thin pool", name),
        "-L", _size(size), *extra, _name("volume group", vg),
    )  # fmt: skip


def lvcreate_thin_argv(vg: str, pool: str, name: str, virtual_size: int) -> tuple[str, ...]:
    return (
        "lvcreate", "--yes", "--type", "thin", "--name", _name("logical volume", name),
        "-V", _size(virtual_size, "virtual size"),
        "--thinpool", _name("thin pool", pool), _name("volume group", vg),
    )  # fmt: skip


def lvcreate_snapshot_argv(vg: str, origin: str, name: str, size: int) -> tuple[str, ...]:
    """A classic (copy-on-write) snapshot of ``vg/origin`` with ``size`` bytes of store."""
    return (
        "lvcreate", "--yes", "--snapshot", "--name", _name("logical volume", name),
        "-L", _size(size), _lv(vg, origin),
    )  # fmt: skip


def lvcreate_thin_snapshot_argv(
    vg: str, origin: str, name: str, *, activation_skip: bool | None = None
) -> tuple[str, ...]:
    """A snapshot of the thin LV ``vg/origin`` in the same pool (no size: it is thin).

    LVM marks thin snapshots "skip activation" by default (activate with ``-K``);
    ``activation_skip=False`` creates it without that flag, and active.
    """
    extra: tuple[str, ...] = ()
    if activation_skip is not None:
        extra = ("--setactivationskip", "y" if activation_skip else "n")
    return (
        "lvcreate", "--yes", "--snapshot", "--name", _name("logical volume", name),
        *extra, _lv(vg, origin),
    )  # fmt: skip


def lvremove_argv(vg: str, name: str) -> tuple[str, ...]:
    return ("lvremove", "-f", _lv(vg, name))


def lvrename_argv(vg: str, old: str, new: str) -> tuple[str, ...]:
    return ("lvrename", _name("volume group", vg), _name("logical volume", old),
            _name("logical volume", new))


def lvresize_argv(vg: str, name: str, size: int, *, shrink: bool = False) -> tuple[str, ...]:
    """Set the LV to ``size`` bytes. Shrinking destroys data past the end: it must be
    asked for with ``shrink=True`` (which adds ``--force``, as lvresize would prompt)."""
    extra = ("--force",) if shrink else ()
    return ("lvresize", *extra, "-L", _size(size), _lv(vg, name))


def lvconvert_merge_argv(vg: str, snapshot: str) -> tuple[str, ...]:
    """Merge a snapshot back into its origin. If the origin is open, LVM defers the merge
    to the origin's next activation."""
    return ("lvconvert", "--merge", _lv(vg, snapshot))


def lvchange_argv(
    vg: str, name: str, *, active: bool, ignore_skip: bool = False
) -> tuple[str, ...]:
    """(De)activate one LV; ``ignore_skip`` (``-K``) activates a thin snapshot anyway."""
    extra = ("-K",) if ignore_skip else ()
    return ("lvchange", "-ay" if active else "-an", *extra, _lv(vg, name))


def pvs_argv(devices: Iterable[str] = ()) -> tuple[str, ...]:
    return ("pvs", *REPORT_OPTIONS, "-o", ",".join(PV_FIELDS), *(_device(d) for d in devices))


def vgs_argv(vgs: Iterable[str] = ()) -> tuple[str, ...]:
    names = tuple(_name("volume group", v) for v in vgs)
    return ("vgs", *REPORT_OPTIONS, "-o", ",".join(VG_FIELDS), *names)


def lvs_argv(
    vg: str | None = None, name: str | None = None, *, hidden: bool = False
) -> tuple[str, ...]:
    """lvs of everything, of one VG, or of one LV. ``hidden`` adds hidden LVs (``-a``)."""
    if name is not None and vg is None:
        raise InvalidArgument("an LV name needs its volume group")
    target: tuple[str, ...] = ()
    if vg is not None:
        target = (_lv(vg, name) if name is not None else _name("volume group", vg),)
    return (
        "lvs",
        *(("-a",) if hidden else ()),
        *REPORT_OPTIONS,
        "-o",
        ",".join(LV_FIELDS),
        *target,
    )


# --------------------------------------------------------------------------- parsers


def _rows(stdout: str, kind: str) -> list[Mapping[str, str]]:
    """The rows of one report kind ("pv", "vg", "lv") from lvm's JSON output."""
    try:
        doc = json.loads(stdout)
    except ValueError as err:
        raise KvmpoolError(f"cannot read {kind}s output: not JSON ({err})") from None
    reports = doc.get("report") if isinstance(doc, dict) else None
    if not isinstance(reports, list):
        raise KvmpoolError(f"cannot read {kind}s output: no 'report' list")
    rows: list[Mapping[str, str]] = []
    for report in reports:
        items = report.get(kind) if isinstance(report, dict) else None
        if not isinstance(items, list):
            raise KvmpoolError(f"cannot read {kind}s output: a report has no '{kind}' list")
        for item in items:
            if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
                raise KvmpoolError(f"cannot read {kind}s output: a row is not string fields")
            rows.append(item)
    return rows


def _str(row: Mapping[str, str], key: str) -> str:
    try:
        return row[key]
    except KeyError:
        raise KvmpoolError(f"lvm report lacks the field '{key}'") from None


def _int(row: Mapping[str, str], key: str) -> int:
    value = _str(row, key)
    try:
        return int(value)
    except ValueError:
        raise KvmpoolError(f"lvm report field '{key}' is not a number: {value!r}") from None


def _percent(row: Mapping[str, str], key: str) -> float | None:
    value = _str(row, key)
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise KvmpoolError(f"lvm report field '{key}' is not a number: {value!r}") from None


# pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_uuid,pv_size,pv_free,...
#   {
#       "report": [
#           {
#               "pv": [
#                   {"pv_name":"/dev/vda", "vg_name":"vg0",
#                    "pv_uuid":"3e6gQE-U6Bf-5s3j-NHPL-q4MT-9sHh-H2gXPv", "pv_size":"532676608",
#                    "pv_free":"343932928", "pv_fmt":"lvm2", "pv_attr":"a--"}
#               ]
#           }
#       ]
#   }
def parse_pvs(stdout: str) -> tuple[PhysicalVolume, ...]:
    return tuple(
        PhysicalVolume(
            name=_str(r, "pv_name"),
            vg=_str(r, "vg_name"),
            uuid=_str(r, "pv_uuid"),
            size=_int(r, "pv_size"),
            free=_int(r, "pv_free"),
            fmt=_str(r, "pv_fmt"),
            attr=_str(r, "pv_attr"),
        )
        for r in _rows(stdout, "pv")
    )


# vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_size,vg_free,...
#   {
#       "report": [
#           {
#               "vg": [
#                   {"vg_name":"vg0", "vg_uuid":"dZdEtw-unR9-Hynm-VMKm-iRuD-whGY-upfvVv",
#                    "vg_size":"1065353216", "vg_free":"343932928", "vg_extent_size":"4194304",
#                    "vg_extent_count":"254", "vg_free_count":"82", "pv_count":"2",
#                    "lv_count":"7", "vg_attr":"wz--n-"}
#               ]
#           }
#       ]
#   }
# A missing VG gives an empty "vg" list, exit code 5 and 'Volume group "x" not found'.
def parse_vgs(stdout: str) -> tuple[VolumeGroup, ...]:
    return tuple(
        VolumeGroup(
            name=_str(r, "vg_name"),
            uuid=_str(r, "vg_uuid"),
            size=_int(r, "vg_size"),
            free=_int(r, "vg_free"),
            extent_size=_int(r, "vg_extent_size"),
            extent_count=_int(r, "vg_extent_count"),
            free_count=_int(r, "vg_free_count"),
            pv_count=_int(r, "pv_count"),
            lv_count=_int(r, "lv_count"),
            attr=_str(r, "vg_attr"),
        )
        for r in _rows(stdout, "vg")
    )


def lv_time(value: str) -> str | None:
    """lvs' lv_time ("2026-11-26 05:09:41 +0000", in the host's zone) as ISO 8601 in UTC,
    the form qcow2 snapshots are reported in. None when lvs gives none, or another form
    (lvm.conf's report/time_format can change it): an unknown time is no error."""
    try:
        when = datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        if value:
            log.info("lvm.lv_time unknown=%r", value)
        return None
    return when.astimezone(datetime.UTC).isoformat()


_SEG_DEVICE_RE = re.compile(r"(?:^|,)(.+?)\((\d+)\)(?=,|$)")


def _segment_devices(value: str) -> tuple[SegmentDevice, ...]:
    # "/dev/vda(0)"; striped: "/dev/vda(0),/dev/vdb(0)"; thin pool: "pool_tdata(0)";
    # thin and zero segments: "". Split after each "(N)" followed by a comma or the end.
    if not value:
        return ()
    result = tuple(
        SegmentDevice(m.group(1), int(m.group(2))) for m in _SEG_DEVICE_RE.finditer(value)
    )
    if ",".join(f"{d.path}({d.first_extent})" for d in result) != value:
        raise KvmpoolError(f"cannot read lvs devices field {value!r}")
    return result


# lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_path,lv_size,
#     lv_attr,origin,pool_lv,data_percent,metadata_percent,segtype,seg_start,seg_size,stripes,
#     devices,vg_extent_size,lv_time
# One row per segment (devices, seg_* are segment fields); an LV on two PVs has two rows.
#   {
#       "report": [
#           {
#               "lv": [
#                   {"lv_name":"lin", "vg_name":"vg0",
#                    "lv_uuid":"uTh1kM-QICx-stm3-AQL3-n3YC-EAWE-92czSg", "lv_path":"/dev/vg0/lin",
#                    "lv_size":"8388608", "lv_attr":"owi-a-s---",
#                    "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"",
#                    "segtype":"linear", "seg_start":"0", "seg_size":"8388608", "stripes":"1",
#                    "devices":"/dev/vda(0)", "vg_extent_size":"4194304",
#                    "lv_time":"2026-11-26 05:09:41 +0000"},
#                   {"lv_name":"pool", ..., "lv_path":"", "lv_attr":"twi-aotz--",
#                    "data_percent":"0.00", "metadata_percent":"10.94", "segtype":"thin-pool",
#                    "devices":"pool_tdata(0)", ...},
#                   {"lv_name":"tsnap", ..., "lv_attr":"Vwi---tz-k", "origin":"thin1",
#                    "pool_lv":"pool", "segtype":"thin", "stripes":"0", "devices":"", ...}
#               ]
#           }
#       ]
#   }
def parse_lvs(stdout: str) -> tuple[LogicalVolume, ...]:
    heads: dict[str, Mapping[str, str]] = {}
    segments: dict[str, list[Segment]] = {}
    for r in _rows(stdout, "lv"):
        key = _str(r, "lv_uuid")
        heads.setdefault(key, r)
        segments.setdefault(key, []).append(
            Segment(
                start=_int(r, "seg_start"),
                size=_int(r, "seg_size"),
                segtype=_str(r, "segtype"),
                stripes=_int(r, "stripes"),
                devices=_segment_devices(_str(r, "devices")),
            )
        )
    return tuple(
        LogicalVolume(
            name=_str(r, "lv_name"),
            vg=_str(r, "vg_name"),
            uuid=key,
            path=_str(r, "lv_path"),
            size=_int(r, "lv_size"),
            attr=_str(r, "lv_attr"),
            origin=_str(r, "origin"),
            pool_lv=_str(r, "pool_lv"),
            data_percent=_percent(r, "data_percent"),
            metadata_percent=_percent(r, "metadata_percent"),
            extent_size=_int(r, "vg_extent_size"),
            segments=tuple(sorted(segments[key], key=lambda s: s.start)),
            origin_size=int(r.get("origin_size") or 0),
            created=lv_time(r.get("lv_time", "")),
        )
        for key, r in heads.items()
    )


# --------------------------------------------------------------------------- errors

# Printed by LVM on healthy hosts; never the reason a command failed.
_HARMLESS = tuple(
    re.compile(p)
    for p in (
        r"File descriptor \d+ .* leaked on \S+ invocation",
        r"lvmpolld\.socket: connect failed",
        r"WARNING: Failed to connect to lvmpolld",
        r"WARNING: Check global/use_lvmpolld",
        r"WARNING: Failed to connect to lvmetad",
        r"WARNING: lvmetad ",
        r"WARNING: Not using lvmetad",
        r"WARNING: You have not turned on protection against thin pools running out of space",
        r"WARNING: Set activation/thin_pool_autoextend_threshold below 100",
        r"WARNING: Sum of all thin volume sizes .* exceeds the size of thin pool",
        r"Thin pool volume with chunk size .* can address at most",
        r"WARNING: This metadata update is NOT backed up",
        r"WARNING: Device .* not initialized in udev database",
        r"Udev is running and DM_DISABLE_UDEV environment variable is set",
    )
)

# Lines that accompany an error but never explain it.
_NOISE = tuple(
    re.compile(p)
    for p in (
        r"^Run `\S+ --help' for more information\.$",
        r"^Cannot process volume group ",
        r"physical volume not initialized\.$",
    )
)


def meaningful_lines(stderr: str) -> list[str]:
    """stderr lines, stripped, without blank lines and known-harmless warnings."""
    lines = (ln.strip() for ln in stderr.splitlines())
    return [ln for ln in lines if ln and not any(p.search(ln) for p in _HARMLESS)]


_NO_SPACE_RE = re.compile(
    r'Volume group "(?P<vg>[^"]+)" has insufficient free space \((?P<free>\d+) extents\): '
    r"(?P<need>\d+) required"
)
_NO_SPACE_HINT = (
    "ask for a smaller size, remove volumes you no longer need, "
    "or add a device to the volume group (vgextend)"
)

_IN_USE = (
    r"\bin use\b",
    r"\bopen logical volume\b",
    r"Device or resource busy",
    r"is used by another device",
    r"of volume group .* without -ff",
    r"is already in volume group",
    r"exclusively",
)
_ALREADY_EXISTS = (r"\balready exists\b",)
_NOT_FOUND = (
    r"\bnot found\b",
    r"\bFailed to find\b",
    r"\bNo device found\b",
    r"\bdoes not exist\b",
)
_NO_SPACE = (r"insufficient free space", r"Insufficient suitable allocatable extents")
_INVALID = (
    r"\bis invalid\b",
    r"\bInvalid argument\b",
    r"\breserved\b",
    r"matches existing size",
    r"\bnot a multiple of\b",
)


def _find(patterns: Sequence[str], lines: Sequence[str]) -> str | None:
    for line in lines:
        if any(re.search(p, line, re.IGNORECASE) for p in patterns):
            return line
    return None


def classify(result: Completed) -> KvmpoolError:
    """The error a failed lvm command stands for, judged by its stderr.

    NotFound ("not found", "Failed to find"), AlreadyExists, InUse ("in use", open LVs,
    PVs of another VG), InvalidArgument (no free space, with a hint; bad names or sizes;
    exit code 3, LVM's command-line error). Anything else: HostCommandFailed.
    """
    cmd = result.argv[0].rsplit("/", 1)[-1] if result.argv else "lvm"
    lines = meaningful_lines(result.stderr)
    useful = [ln for ln in lines if not any(p.search(ln) for p in _NOISE)] or lines

    if (line := _find(_IN_USE, useful)) is not None:
        if re.search(r"volume group", line, re.IGNORECASE):
            hint = (
                "the device belongs to a volume group: remove it there first (vgreduce, vgremove)"
            )
        else:
            hint = "close or deactivate what uses it (a mounted filesystem, a running guest)"
        return InUse(f"{cmd}: {line}", hint=hint)
    if (line := _find(_ALREADY_EXISTS, useful)) is not None:
        return AlreadyExists(f"{cmd}: {line}")
    if (line := _find(_NOT_FOUND, useful)) is not None:
        return NotFound(f"{cmd}: {line}")
    if (line := _find(_NO_SPACE, useful)) is not None:
        m = _NO_SPACE_RE.search(line)
        if m is not None:
            message = (
                f"volume group '{m['vg']}' has too little free space: "
                f"{m['free']} free extents, {m['need']} needed"
            )
        else:
            message = f"{cmd}: {line}"
        return InvalidArgument(message, hint=_NO_SPACE_HINT)
    if (line := _find(_INVALID, useful)) is not None or result.returncode == 3:
        detail = line or (useful[0] if useful else f"exit code {result.returncode}")
        return InvalidArgument(f"{cmd}: {detail}")
    detail = useful[0] if useful else f"exit code {result.returncode}"
    return HostCommandFailed(
        f"{cmd} failed: {detail}",
        argv=result.argv,
        returncode=result.returncode,
        stderr=result.stderr,
    )


# --------------------------------------------------------------------------- runner


class Lvm:
    """Runs lvm2 commands through a ``Runner`` and parses their reports.

    ``config``: an lvm ``--config`` string added to every command (e.g. NO_UDEV_CONFIG);
    ``timeout``: seconds for each command (``merge_timeout`` for ``lvconvert --merge``,
    which copies data back and waits for it).
    """

    def __init__(
        self,
        runner: Runner,
        *,
        config: str | None = None,
        timeout: float = 120.0,
        merge_timeout: float = 1800.0,
    ) -> None:
        self.runner = runner
        self.config = config
        self.timeout = timeout
        self.merge_timeout = merge_timeout

    def _run(
        self, argv: Sequence[str], *, changes: bool = True, timeout: float | None = None
    ) -> Completed:
        full = with_config(argv, self.config)
        try:
            result = self.runner.run(
                full, changes=changes, timeout=timeout or self.timeout, check=False
            )
        except ToolMissing as err:
            raise ToolMissing(
                err.message, hint=err.hint or f"install it: apt-get install {PACKAGE}"
            ) from None
        if result.returncode != 0:
            error = classify(result)
            if isinstance(error, HostCommandFailed):
                raise error
            raise error from HostCommandFailed(
                f"{argv[0]} failed",
                argv=result.argv,
                returncode=result.returncode,
                stderr=result.stderr,
            )
        for line in meaningful_lines(result.stderr):
            log.info("lvm.warning command=%s line=%s", argv[0], line)
        return result

    # reports (read-only: they run in dry-run mode too)

    def pvs(self, devices: Iterable[str] = ()) -> tuple[PhysicalVolume, ...]:
        """Runs: pvs."""
        return parse_pvs(self._run(pvs_argv(devices), changes=False).stdout)

    def vgs(self, names: Iterable[str] = ()) -> tuple[VolumeGroup, ...]:
        """Runs: vgs. A name that does not exist raises NotFound."""
        return parse_vgs(self._run(vgs_argv(names), changes=False).stdout)

    def vg(self, name: str) -> VolumeGroup:
        """Runs: vgs."""
        found = [v for v in self.vgs([name]) if v.name == name]
        if not found:
            raise NotFound(f"volume group '{name}' not found")
        return found[0]

    def lvs(self, vg: str | None = None, *, hidden: bool = False) -> tuple[LogicalVolume, ...]:
        """Runs: lvs. ``hidden`` includes LVs such as a thin pool's [pool_tdata]."""
        return parse_lvs(self._run(lvs_argv(vg, hidden=hidden), changes=False).stdout)

    def lv(self, vg: str, name: str) -> LogicalVolume:
        """Runs: lvs. A missing LV raises NotFound."""
        found = parse_lvs(self._run(lvs_argv(vg, name), changes=False).stdout)
        if not found:
            raise NotFound(f"logical volume '{vg}/{name}' not found")
        return found[0]

    # physical volumes and volume groups

    def pvcreate(self, devices: Iterable[str]) -> None:
        """Runs: pvcreate."""
        self._run(pvcreate_argv(devices))

    def pvremove(self, devices: Iterable[str], *, force: bool = False) -> None:
        """Runs: pvremove."""
        self._run(pvremove_argv(devices, force=force))

    def vgcreate(self, vg: str, devices: Iterable[str], *, extent_size: int | None = None) -> None:
        """Runs: vgcreate."""
        self._run(vgcreate_argv(vg, devices, extent_size=extent_size))

    def vgchange(self, vg: str, *, active: bool) -> None:
        """Runs: vgchange -aly / -aln."""
        self._run(vgchange_argv(vg, active=active))

    def vgremove(self, vg: str) -> None:
        """Runs: vgremove -f (removes the VG's LVs too)."""
        self._run(vgremove_argv(vg))

    # logical volumes

    def create_linear(self, vg: str, name: str, size: int) -> None:
        """Runs: lvcreate."""
        self._run(lvcreate_linear_argv(vg, name, size))

    def create_sparse(self, vg: str, name: str, capacity: int, allocation: int) -> None:
        """Runs: lvcreate --type snapshot --virtualsize."""
        self._run(lvcreate_sparse_argv(vg, name, capacity, allocation))

    def create_thin_pool(
        self, vg: str, name: str, size: int, *, metadata_size: int | None = None
    ) -> None:
        """Runs: lvcreate --type thin-pool."""
        self._run(lvcreate_thin_pool_argv(vg, name, size, metadata_size=metadata_size))

    def create_thin(self, vg: str, pool: str, name: str, virtual_size: int) -> None:
        """Runs: lvcreate --type thin."""
        self._run(lvcreate_thin_argv(vg, pool, name, virtual_size))

    def create_snapshot(self, vg: str, origin: str, name: str, size: int) -> None:
        """Runs: lvcreate --snapshot -L."""
        self._run(lvcreate_snapshot_argv(vg, origin, name, size))

    def create_thin_snapshot(
        self, vg: str, origin: str, name: str, *, activation_skip: bool | None = None
    ) -> None:
        """Runs: lvcreate --snapshot (of a thin LV)."""
        self._run(lvcreate_thin_snapshot_argv(vg, origin, name, activation_skip=activation_skip))

    def lvremove(self, vg: str, name: str) -> None:
        """Runs: lvremove -f."""
        self._run(lvremove_argv(vg, name))

    def lvrename(self, vg: str, old: str, new: str) -> None:
        """Runs: lvrename (refused with AlreadyExists when ``new`` exists)."""
        self._run(lvrename_argv(vg, old, new))

    def lvresize(self, vg: str, name: str, size: int, *, shrink: bool = False) -> None:
        """Runs: lvresize -L."""
        self._run(lvresize_argv(vg, name, size, shrink=shrink))

    def merge(self, vg: str, snapshot: str) -> None:
        """Runs: lvconvert --merge (waits for the merge when the origin is not open)."""
        self._run(lvconvert_merge_argv(vg, snapshot), timeout=self.merge_timeout)

    def lvchange(self, vg: str, name: str, *, active: bool, ignore_skip: bool = False) -> None:
        """Runs: lvchange -ay/-an [-K]."""
        self._run(lvchange_argv(vg, name, active=active, ignore_skip=ignore_skip))
