"""host.blkid: argv goldens, parsers on recorded blkid/wipefs output, libvirt's label table."""

from __future__ import annotations

import pytest

from kvmpool.errors import HostCommandFailed
from kvmpool.host import blkid
from kvmpool.host.run import Completed, Runner

# Recorded on Debian 12 (util-linux 2.38.1) from loop devices.
EXT4 = """DEVNAME=/dev/loop0
UUID=caf70b11-46be-4efc-b8ba-1f15343aa1ba
VERSION=1.0
BLOCK_SIZE=1024
TYPE=ext4
USAGE=filesystem
"""
GPT = """DEVNAME=/dev/loop0
PTUUID=c57c8c47-6403-4118-9f3f-8cc7d1fe2039
PTTYPE=gpt
"""
LVM = """DEVNAME=/dev/loop0
UUID=qzziUr-nX9G-luSV-BDT7-YBr0-uX8N-BdyPb8
VERSION=LVM2\\ 001
TYPE=LVM2_member
USAGE=raid
"""
VFAT = """DEVNAME=/dev/loop0
SEC_TYPE=msdos
UUID=C115-808E
VERSION=FAT16
BLOCK_SIZE=512
TYPE=vfat
USAGE=filesystem
"""
WIPEFS_GPT = """{
   "signatures": [
      {
         "device": "loop0",
         "offset": "0x200",
         "type": "gpt",
         "uuid": null,
         "label": null
      },{
         "device": "loop0",
         "offset": "0x7fffe00",
         "type": "gpt",
         "uuid": null,
         "label": null
      },{
         "device": "loop0",
         "offset": "0x1fe",
         "type": "PMBR",
         "uuid": null,
         "label": null
      }
   ]
}
"""
WIPEFS_LVM = """{
   "signatures": [
      {
         "device": "loop0",
         "offset": "0x218",
         "type": "LVM2_member",
         "uuid": "qzziUr-nX9G-luSV-BDT7-YBr0-uX8N-BdyPb8",
         "label": null
      }
   ]
}
"""


def test_argv_goldens() -> None:
    assert blkid.probe_argv("/dev/sdb") == ["blkid", "-p", "-o", "export", "/dev/sdb"]
    assert blkid.list_argv("/dev/sdb") == ["wipefs", "--json", "--no-act", "/dev/sdb"]
    assert blkid.wipe_argv("/dev/sdb") == ["wipefs", "--all", "/dev/sdb"]


def test_blkid_export_is_read_into_signatures() -> None:
    assert blkid.parse_probe(EXT4) == [blkid.Signature("ext4", usage="filesystem")]
    assert blkid.parse_probe(GPT) == [blkid.Signature("gpt", partition_table=True)]
    assert blkid.parse_probe(LVM) == [blkid.Signature("LVM2_member", usage="raid")]
    assert blkid.parse_export(LVM)["VERSION"] == "LVM2\\ 001"
    assert blkid.parse_probe("") == []


def test_wipefs_json_is_read_into_signatures() -> None:
    found = blkid.parse_wipefs(WIPEFS_GPT)
    assert [(s.type, s.offset, s.partition_table) for s in found] == [
        ("gpt", 0x200, True), ("gpt", 0x7FFFE00, True), ("PMBR", 0x1FE, True)]
    assert blkid.parse_wipefs("") == []
    assert blkid.parse_wipefs(WIPEFS_LVM)[0].type == "LVM2_member"


def test_what_was_found_is_named_in_words() -> None:
    assert blkid.describe(blkid.parse_probe(EXT4)) == "an ext4 file system"
    assert blkid.describe(blkid.parse_probe(VFAT)) == "a vfat file system"
    assert blkid.describe(blkid.parse_probe(LVM)) == "an LVM physical volume"
    assert blkid.describe(blkid.parse_wipefs(WIPEFS_GPT)) == "a gpt partition table"
    both = blkid.parse_probe(GPT) + blkid.parse_probe(LVM)
    assert blkid.describe(both) == "a gpt partition table and an LVM physical volume"
    assert blkid.Signature("swap").describe() == "a swap area"
    assert blkid.Signature("crypto_LUKS", usage="crypto").describe() == "a LUKS header"


def _head(offset: int, magic: bytes) -> bytes:
    head = bytearray(blkid.LABEL_BYTES)
    head[offset:offset + len(magic)] = magic
    return bytes(head)


def test_libvirts_disk_label_table() -> None:
    assert blkid.disk_label(bytes(blkid.LABEL_BYTES)) is None
    assert blkid.disk_label(_head(0x1FE, b"\x55\xaa")) == "dos"
    gpt = bytearray(_head(0x1FE, b"\x55\xaa"))  # a protective MBR as well: gpt wins
    gpt[0x200:0x208] = b"EFI PART"
    assert blkid.disk_label(bytes(gpt)) == "gpt"
    assert blkid.disk_label(_head(0x218, b"LVM2 001")) == "lvm2"
    assert blkid.disk_label(_head(0x1FC, b"\xda\xbe")) == "sun"
    assert blkid.disk_label(_head(0, b"\xcb\x00\x00\x00IPL1")) == "pc98"


class FakeRunner(Runner):
    def __init__(self, answers: dict[str, Completed], dry_run: bool = False) -> None:
        super().__init__(dry_run=dry_run)
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None) -> Completed:
        assert timeout <= 600
        self.calls.append(argv)
        return self.answers[argv[0]]


def _done(rc: int, out: str = "", err: str = "") -> Completed:
    return Completed((), rc, out, err)


def test_probe_merges_blkid_and_wipefs_and_runs_in_dry_run() -> None:
    runner = FakeRunner({"blkid": _done(0, GPT), "wipefs": _done(0, WIPEFS_GPT)}, dry_run=True)
    found = blkid.Probe(runner).signatures("/dev/sdb")
    assert [s.type for s in found] == ["gpt"]
    assert runner.calls == [tuple(blkid.probe_argv("/dev/sdb")),
                            tuple(blkid.list_argv("/dev/sdb"))]


def test_probe_blank_ambivalent_and_broken() -> None:
    blank = FakeRunner({"blkid": _done(2), "wipefs": _done(0)})
    assert blkid.Probe(blank).signatures("/dev/sdb") == []
    several = FakeRunner({"blkid": _done(8, err="ambivalent result"), "wipefs": _done(0)})
    assert blkid.describe(blkid.Probe(several).signatures("/dev/sdb")) == "several signatures"
    lvm = FakeRunner({"blkid": _done(8), "wipefs": _done(0, WIPEFS_LVM)})
    assert blkid.describe(blkid.Probe(lvm).signatures("/dev/sdb")) == "an LVM physical volume"
    broken = FakeRunner({"blkid": _done(4, err="blkid: error: /dev/sdb: No such file")})
    with pytest.raises(HostCommandFailed, match="blkid cannot probe /dev/sdb"):
        blkid.Probe(broken).signatures("/dev/sdb")


def test_wipe_is_a_change_skipped_in_dry_run() -> None:
    runner = FakeRunner({}, dry_run=True)
    said: list[str] = []
    runner.echo = said.append
    blkid.Probe(runner).wipe("/dev/sdb")
    assert runner.calls == [] and said == ["would run: wipefs --all /dev/sdb"]
