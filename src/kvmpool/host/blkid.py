"""Signatures on a device: blkid -p, wipefs, and libvirt's disk-label table.

kvmpool never writes over a device that holds data unless the user said ``--overwrite``.
"Holds data" means anything one of these sees: a file system, a partition table, an LVM
physical volume, a swap area, a RAID member, a LUKS header...

- ``probe_argv`` / ``parse_probe``: ``blkid -p -o export DEV`` (low-level probe, no cache).
- ``list_argv`` / ``parse_wipefs``: ``wipefs --json --no-act DEV`` lists every signature,
  including the ones blkid reports only as "ambivalent".
- ``wipe_argv``: ``wipefs --all DEV``, run only on ``--overwrite`` before writing a label
  or a file system, so no stale signature survives beside the new one.
- ``disk_label``: libvirt's byte table (``storage_util.c`` ``disk_types[]``) that decides
  which partition-table label a disk pool's device carries.
- ``Probe``: runs the two listings through a ``Runner`` (read-only, bounded) and describes
  what it found in words.

Host commands it may run: blkid, wipefs (Debian package util-linux).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from kvmpool.errors import HostCommandFailed, KvmpoolError
from kvmpool.host.run import Runner

PROBE_TIMEOUT = 30.0
WIPE_TIMEOUT = 60.0

# blkid(8) exit codes: 2 = nothing found, 8 = ambivalent (several signatures).
BLKID_NOTHING = 2
BLKID_AMBIVALENT = 8

PARTITION_TABLES = frozenset({
    "gpt", "PMBR", "dos", "atari", "bsd", "dvh", "mac", "sgi", "sun", "aix", "amiga",
    "pc98", "solaris", "unixware", "minix", "ultrix",
})


@dataclass(frozen=True, slots=True)
class Signature:
    type: str  # "ext4", "gpt", "LVM2_member", ...
    offset: int | None = None  # bytes from the device start (wipefs only)
    usage: str | None = None  # blkid's USAGE: filesystem, raid, crypto, other
    partition_table: bool = False

    def describe(self) -> str:
        if self.partition_table:
            return f"a {'gpt' if self.type == 'PMBR' else self.type} partition table"
        if self.type == "LVM2_member":
            return "an LVM physical volume"
        if self.type == "swap":
            return "a swap area"
        if self.type.endswith("_raid_member"):
            return f"a RAID member ({self.type})"
        if self.type == "ambivalent":
            return "several signatures"
        if self.type == "crypto_LUKS":
            return "a LUKS header"
        if self.usage in (None, "filesystem"):
            return f"{_article(self.type)} {self.type} file system"
        return f"{_article(self.type)} {self.type} signature"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiox" else "a"


# ------------------------------------------------------------------ argv


def probe_argv(device: str) -> list[str]:
    """>>> probe_argv("/dev/sdb")
    ['blkid', '-p', '-o', 'export', '/dev/sdb']
    """
    return ["blkid", "-p", "-o", "export", device]


def list_argv(device: str) -> list[str]:
    """>>> list_argv("/dev/sdb")
    ['wipefs', '--json', '--no-act', '/dev/sdb']
    """
    return ["wipefs", "--json", "--no-act", device]


def wipe_argv(device: str) -> list[str]:
    """>>> wipe_argv("/dev/sdb")
    ['wipefs', '--all', '/dev/sdb']
    """
    return ["wipefs", "--all", device]


# ------------------------------------------------------------------ parsers


# blkid -p -o export /dev/loop0   (an ext4 file system)
#   DEVNAME=/dev/loop0
#   UUID=0f6b7c16-54a5-4f4b-9f1c-2b0c1d1f6f4e
#   VERSION=1.0
#   BLOCK_SIZE=1024
#   TYPE=ext4
#   USAGE=filesystem
# blkid -p -o export /dev/loop0   (a partition table)
#   DEVNAME=/dev/loop0
#   PTUUID=c57c8c47-6403-4118-9f3f-8cc7d1fe2039
#   PTTYPE=gpt
def parse_export(text: str) -> dict[str, str]:
    """KEY=VALUE lines into a dict (blkid escapes nothing that matters to kvmpool)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def parse_probe(text: str) -> list[Signature]:
    values = parse_export(text)
    found: list[Signature] = []
    if values.get("PTTYPE"):
        found.append(Signature(values["PTTYPE"], partition_table=True))
    if values.get("TYPE"):
        found.append(Signature(values["TYPE"], usage=values.get("USAGE")))
    return found


# wipefs --json --no-act /dev/loop0   (a gpt disk)
#   {
#      "signatures": [
#         {"device": "loop0", "offset": "0x200", "type": "gpt", "uuid": null, "label": null},
#         {"device": "loop0", "offset": "0x7fffe00", "type": "gpt", "uuid": null, "label": null},
#         {"device": "loop0", "offset": "0x1fe", "type": "PMBR", "uuid": null, "label": null}
#      ]
#   }
# A blank device prints nothing at all (and exits 0).
def parse_wipefs(text: str) -> list[Signature]:
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise KvmpoolError(f"cannot read wipefs output: {err}") from None
    rows = doc.get("signatures", []) if isinstance(doc, Mapping) else []
    found: list[Signature] = []
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("type"), str):
            continue
        offset = row.get("offset")
        try:
            off = int(str(offset), 0) if offset is not None else None
        except ValueError:
            off = None
        kind = str(row["type"])
        found.append(Signature(kind, offset=off, partition_table=kind in PARTITION_TABLES))
    return found


def describe(found: list[Signature]) -> str:
    """'an ext4 file system', 'a gpt partition table and an LVM physical volume'."""
    words: list[str] = []
    for sig in found:
        text = sig.describe()
        if text not in words:
            words.append(text)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# ------------------------------------------------------------------ disk labels

# libvirt's detection table for disk pools: (label, offset, magic); dos is checked last.
DISK_LABELS: tuple[tuple[str, int, bytes], ...] = (
    ("lvm2", 0x218, b"LVM2 001"),
    ("gpt", 0x200, b"EFI PART"),
    ("dvh", 0x0, b"\x0b\xe5\xa9\x41"),
    ("mac", 0x0, b"ER"),
    ("bsd", 0x40, b"\x57\x45\x56\x82"),
    ("sun", 0x1FC, b"\xda\xbe"),
    ("pc98", 0x0, b"\xcb\x00\x00\x00IPL1"),
    ("dos", 0x1FE, b"\x55\xaa"),
)
LABEL_BYTES = 0x220  # enough of the head for every entry above


def disk_label(head: bytes) -> str | None:
    """The label libvirt would detect in a device's first bytes, or None."""
    for name, offset, magic in DISK_LABELS:
        if head[offset:offset + len(magic)] == magic:
            return name
    return None


# ------------------------------------------------------------------ runner


class Probe:
    """Asks blkid and wipefs (both read-only, also in dry-run) what a device holds."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def blkid(self, device: str) -> list[Signature]:
        """What ``blkid -p`` sees (one file system or one partition table at most)."""
        result = self.runner.run(probe_argv(device), changes=False, check=False,
                                 timeout=PROBE_TIMEOUT)
        if result.returncode == 0:
            return parse_probe(result.stdout)
        if result.returncode == BLKID_AMBIVALENT:
            return [Signature("ambivalent", usage="other")]
        if result.returncode == BLKID_NOTHING:
            return []
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise HostCommandFailed(f"blkid cannot probe {device}: {lines[-1]}", argv=result.argv,
                                returncode=result.returncode, stderr=result.stderr)

    def signatures(self, device: str) -> list[Signature]:
        """Every signature blkid -p or wipefs finds."""
        probed = self.blkid(device)
        found = [s for s in probed if s.type != "ambivalent"]
        listed = self.runner.run(list_argv(device), changes=False, timeout=PROBE_TIMEOUT)
        for sig in parse_wipefs(listed.stdout):
            if not any(f.type == sig.type or (sig.type == "PMBR" and f.type == "gpt")
                       for f in found):
                found.append(sig)
        return found or probed

    def wipe(self, device: str) -> None:
        """Erase every signature (``--overwrite`` only). May run: wipefs --all."""
        self.runner.run(wipe_argv(device), timeout=WIPE_TIMEOUT)
