"""SCSI hosts and their logical units, as the kernel shows them in sysfs.

What a scsi pool needs to know about the host, read from files (no tool but ``scsi_id``):

- adapter names: ``hostN`` (also ``scsi_hostN``, ``fc_hostN``) -> N (``host_number``);
- the host behind a PCI address and a ``unique_id`` (``Sysfs.host_by_parent``): a
  ``/sys/class/scsi_host/hostN`` link whose target path has the address as one of its
  components (``/sys/devices/pci0000:00/0000:00:04.0/virtio1/host0/scsi_host/host0``), and
  whose ``unique_id`` file holds the number;
- the host of a vHBA by its port and node names (``Sysfs.fc_host_by_wwn``:
  ``/sys/class/fc_host/hostN/{port_name,node_name}``);
- a bus scan (``Sysfs.scan``: ``- - -`` into ``/sys/class/scsi_host/hostN/scan``);
- the logical units of a host (``Sysfs.luns``): ``/sys/bus/scsi/devices/H:C:T:L`` with its
  peripheral ``type`` (0 disk, 5 CD/DVD), its block device (``block/sdX``) and size
  (``block/sdX/size``, 512-byte sectors);
- the stable links to a device in a directory like ``/dev/disk/by-id`` (``stable_links``);
- the device's identifier (``scsi_id_argv`` / ``parse_scsi_id``), libvirt's volume key.

Every sysfs path hangs off ``Sysfs.root`` (``/sys``), so tests build a fake tree.
Host commands it may run: ``/lib/udev/scsi_id`` (Debian package udev).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kvmpool.host.links import links_to

SCSI_ID = "/lib/udev/scsi_id"
SCAN_ALL = "- - -"  # every channel, target and LUN
DISK, ROM = 0, 5  # SCSI peripheral device types kept as volumes (as libvirt)

_HOST_NAME = re.compile(r"(?:scsi_host|fc_host|host)([0-9]+)")
_LU_NAME = re.compile(r"([0-9]+):([0-9]+):([0-9]+):([0-9]+)")


def host_number(name: str) -> int | None:
    """The N of ``hostN``, ``scsi_hostN`` or ``fc_hostN``; None for anything else.

    >>> host_number("host3"), host_number("scsi_host12"), host_number("sda")
    (3, 12, None)
    """
    m = _HOST_NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def pci_address(domain: int, bus: int, slot: int, function: int) -> str:
    """sysfs's spelling of a PCI address.

    >>> pci_address(0, 0, 4, 0)
    '0000:00:04.0'
    """
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def same_wwn(a: str, b: str) -> bool:
    """``0x5001A4A...`` (sysfs) and ``5001a4a...`` (pool XML) name the same port."""
    return a.lower().removeprefix("0x") == b.lower().removeprefix("0x")


@dataclass(frozen=True, slots=True)
class Lun:
    """One logical unit ``host:channel:target:lun`` of a SCSI host."""

    host: int
    channel: int
    target: int
    lun: int
    type: int | None  # SCSI peripheral device type; None if sysfs has none
    disk: str | None  # its block device (sda), None if it has none
    size: int | None  # bytes


class Sysfs:
    """The SCSI part of sysfs under ``root``."""

    def __init__(self, root: str = "/sys") -> None:
        self.root = root

    def _path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def host_dir(self, host: int) -> str:
        return self._path("class", "scsi_host", f"host{host}")

    def host_exists(self, host: int) -> bool:
        return os.path.isdir(self.host_dir(host))

    def hosts(self) -> list[int]:
        try:
            names = os.listdir(self._path("class", "scsi_host"))
        except FileNotFoundError:
            return []
        return sorted(n for n in map(host_number, names) if n is not None)

    def unique_id(self, host: int) -> int | None:
        text = _read(os.path.join(self.host_dir(host), "unique_id"))
        return int(text) if text is not None and text.isdigit() else None

    def host_by_parent(self, address: str, unique_id: int) -> int | None:
        """The host under PCI device ``address`` (``0000:00:04.0``) with that unique_id."""
        for host in self.hosts():
            real = os.path.realpath(self.host_dir(host))
            if address in real.split(os.sep) and self.unique_id(host) == unique_id:
                return host
        return None

    def fc_host_by_wwn(self, wwnn: str, wwpn: str) -> int | None:
        """The (v)HBA whose node and port names are ``wwnn`` and ``wwpn``."""
        base = self._path("class", "fc_host")
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            return None
        for name in names:
            node = _read(os.path.join(base, name, "node_name"))
            port = _read(os.path.join(base, name, "port_name"))
            if node and port and same_wwn(node, wwnn) and same_wwn(port, wwpn):
                return host_number(name)
        return None

    def vport_capable(self) -> list[int]:
        """Fibre Channel hosts that can create virtual ports (NPIV): ``vport_create``."""
        base = self._path("class", "fc_host")
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return []
        return sorted(n for n in map(host_number, names)
                      if n is not None and os.path.exists(os.path.join(base, f"host{n}",
                                                                       "vport_create")))

    def scan(self, host: int) -> None:
        """Ask the kernel to scan every channel, target and LUN of the host (synchronous
        for most drivers; udev makes the device nodes and links afterwards)."""
        with open(os.path.join(self.host_dir(host), "scan"), "w", encoding="ascii") as f:
            f.write(SCAN_ALL)

    def luns(self, host: int) -> list[Lun]:
        """The host's logical units, in H:C:T:L order."""
        base = self._path("bus", "scsi", "devices")
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = _LU_NAME.fullmatch(name)
            if m is None or int(m.group(1)) != host:
                continue
            h, c, t, n = (int(g) for g in m.groups())
            lu_dir = os.path.join(base, name)
            kind = _read(os.path.join(lu_dir, "type"))
            disk = _block_device(lu_dir)
            size = None
            if disk is not None:
                sectors = _read(os.path.join(lu_dir, "block", disk, "size"))
                size = int(sectors) * 512 if sectors and sectors.isdigit() else None
            found.append(Lun(h, c, t, n, int(kind) if kind and kind.isdigit() else None,
                             disk, size))
        return sorted(found, key=lambda lu: (lu.channel, lu.target, lu.lun))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _block_device(lu_dir: str) -> str | None:
    """``block/sdX`` (sysfs today) or an old kernel's ``block:sdX`` link."""
    try:
        names = sorted(os.listdir(lu_dir))
    except OSError:
        return None
    for name in names:
        if name == "block":
            try:
                disks = sorted(d for d in os.listdir(os.path.join(lu_dir, name))
                               if not d.startswith("."))
            except OSError:
                return None
            return disks[0] if disks else None
        if name.startswith("block:"):
            return name.split(":", 1)[1] or None
    return None


def stable_links(directory: str, dev_root: str = "/dev") -> dict[str, str]:
    """Kernel device name (``sda``, also ``sda1``) -> the first link in ``directory``
    (sorted by name) that resolves to ``dev_root/<name>``."""
    return {os.path.basename(real): link for real, link in links_to(directory).items()
            if os.path.dirname(real) == dev_root}


def scsi_id_argv(device: str, *, export: bool = False) -> list[str]:
    """The device's identifier (VPD page 0x83, else the serial), as libvirt asks for it;
    ``export``: as ``KEY=value`` lines (what an NPIV key is made of).

    >>> scsi_id_argv("/dev/sda")
    ['/lib/udev/scsi_id', '--replace-whitespace', '--whitelisted', '--device', '/dev/sda']
    """
    return [SCSI_ID, "--replace-whitespace", "--whitelisted",
            *(["--export"] if export else []), "--device", device]


def parse_scsi_id(stdout: str) -> str | None:
    """First line of scsi_id's output, e.g. ``35333333000002710`` for a scsi_debug LUN
    (an NAA id) or ``0QEMU_QEMU_HARDDISK_drive0`` for a QEMU disk; None if empty.

    >>> parse_scsi_id("35333333000002710\\n"), parse_scsi_id("")
    ('35333333000002710', None)
    """
    line = stdout.strip().splitlines()[0].strip() if stdout.strip() else ""
    return line or None


def parse_npiv_key(stdout: str) -> str | None:
    """A LUN seen through a vHBA: ``<ID_SERIAL>_PORT<ID_TARGET_PORT>`` from scsi_id's
    ``--export`` lines (libvirt's NPIV key), None if either is missing.

    >>> parse_npiv_key("ID_SCSI=1\\nID_SERIAL=3600a0b80\\nID_TARGET_PORT=1\\n")
    '3600a0b80_PORT1'
    """
    values = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    serial, port = values.get("ID_SERIAL", ""), values.get("ID_TARGET_PORT", "")
    return f"{serial}_PORT{port}" if serial and port else None
