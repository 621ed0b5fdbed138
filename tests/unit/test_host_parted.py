"""host.parted: argv goldens, parted -m and sfdisk --json parsers on recorded output, names."""

from __future__ import annotations

import pytest

from kvmpool.errors import HostCommandFailed, InUse, InvalidArgument, NotFound
from kvmpool.host import parted
from kvmpool.host.parted import Region

# Recorded with parted 3.5 and sfdisk (util-linux 2.38.1) on a 128 MiB loop device.
GPT_PRINT = """BYT;
/dev/loop0:134217728B:loopback:512:512:gpt:Loopback device:;
1:17408B:1048575B:1031168B:free;
1:1048576B:11534335B:10485760B::primary:;
2:11534336B:22020095B:10485760B::primary:lvm;
1:22020096B:134200831B:112180736B:free;
"""
DOS_PRINT = """BYT;
/dev/loop0:134217728B:loopback:512:512:msdos:Loopback device:;
1:1024B:1048575B:1047552B:free;
1:1048576B:11534335B:10485760B:::;
2:11534336B:60000255B:48465920B:::lba;
1:11535360B:12533759B:998400B:free;
5:12582912B:20971519B:8388608B:::swap;
1:20971520B:60000255B:39028736B:free;
1:60000256B:61865983B:1865728B:free;
3:61865984B:70254591B:8388608B:::lba;
1:70254592B:134217727B:63963136B:free;
"""
BLANK_PRINT = """BYT;
/dev/loop0:134217728B:loopback:512:512:unknown:Loopback device:;
"""
WHOLE_FS_PRINT = """BYT;
/dev/loop0:134217728B:loopback:512:512:loop:Loopback device:;
1:0B:134217727B:134217728B:ext4::;
"""
DOS_SFDISK = """{
   "partitiontable": {
      "label": "dos",
      "id": "0x3d058f53",
      "device": "/dev/loop0",
      "unit": "sectors",
      "sectorsize": 512,
      "partitions": [
         {
            "node": "/dev/loop0p1",
            "start": 2048,
            "size": 20480,
            "type": "83"
         },{
            "node": "/dev/loop0p2",
            "start": 22528,
            "size": 94660,
            "type": "f"
         },{
            "node": "/dev/loop0p3",
            "start": 120832,
            "size": 16384,
            "type": "c"
         },{
            "node": "/dev/loop0p5",
            "start": 24576,
            "size": 16384,
            "type": "82"
         }
      ]
   }
}
"""
GPT_SFDISK = """{
   "partitiontable": {
      "label": "gpt",
      "id": "C57C8C47-6403-4118-9F3F-8CC7D1FE2039",
      "device": "/dev/loop0",
      "unit": "sectors",
      "firstlba": 34,
      "lastlba": 262110,
      "sectorsize": 512,
      "partitions": [
         {
            "node": "/dev/loop0p1",
            "start": 2048,
            "size": 20480,
            "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "uuid": "F750C97C-B0D0-42B3-99C3-B33DFB1D557F",
            "name": "primary"
         },{
            "node": "/dev/loop0p2",
            "start": 22528,
            "size": 20480,
            "type": "E6D6D379-F507-44C2-A23C-238F2A3DF928",
            "uuid": "FF72184D-4966-4A74-B997-70957FD63E39",
            "name": "primary"
         }
      ]
   }
}
"""


def test_argv_goldens() -> None:
    assert parted.print_argv("/dev/sdb") == [
        "parted", "-s", "-m", "/dev/sdb", "unit", "B", "print", "free"]
    assert parted.sfdisk_argv("/dev/sdb") == ["sfdisk", "--json", "/dev/sdb"]
    assert parted.mklabel_argv("/dev/sdb", "msdos") == [
        "parted", "-s", "/dev/sdb", "mklabel", "msdos"]
    assert parted.mkpart_argv("/dev/sdb", "primary", None, 1048576, 2097151) == [
        "parted", "-s", "/dev/sdb", "mkpart", "primary", "1048576B", "2097151B"]
    assert parted.mkpart_argv("/dev/sdb", "logical", "linux-swap", 1048576, 2097151) == [
        "parted", "-s", "/dev/sdb", "mkpart", "logical", "linux-swap", "1048576B", "2097151B"]
    assert parted.mkpart_argv("/dev/sdb", "primary", "ext2", 1048576, 2097151, number=3,
                              flag="raid") == [
        "parted", "-s", "/dev/sdb", "mkpart", "primary", "ext2", "1048576B", "2097151B",
        "set", "3", "raid", "on"]
    assert parted.rm_argv("/dev/sdb", 5) == ["parted", "-s", "/dev/sdb", "rm", "5"]


def test_labels() -> None:
    assert [parted.label_for(f) for f in (None, "unknown", "dos", "gpt", "sun")] == [
        "msdos", "msdos", "msdos", "gpt", "sun"]
    with pytest.raises(InvalidArgument):
        parted.label_for("lvm2")


def test_parse_gpt_print() -> None:
    table = parted.parse_print(GPT_PRINT)
    assert (table.device, table.size, table.label, table.logical_sector) == (
        "/dev/loop0", 134217728, "gpt", 512)
    assert table.free == (Region(None, 17408, 1048576), Region(None, 22020096, 134200832))
    assert table.partitions == (
        Region(1, 1048576, 11534336, name="primary"),
        Region(2, 11534336, 22020096, name="primary", flags=("lvm",)))
    assert table.partitions[0].size == 10 * 1024 * 1024


def test_parse_dos_print() -> None:
    table = parted.parse_print(DOS_PRINT)
    assert table.label == "msdos"
    assert [p.number for p in table.partitions] == [1, 2, 5, 3]
    assert [(r.start, r.end) for r in table.free][:2] == [(1024, 1048576), (11535360, 12533760)]
    assert parted.by_number(table.partitions, 5) == Region(5, 12582912, 20971520,
                                                           flags=("swap",))
    assert parted.by_number(table.partitions, 4) is None


def test_parse_print_without_a_table() -> None:
    assert parted.parse_print(BLANK_PRINT).label == "unknown"
    assert parted.parse_print(BLANK_PRINT).regions == ()
    whole = parted.parse_print(WHOLE_FS_PRINT)
    assert whole.label == "loop" and whole.partitions[0].fs == "ext4"
    with pytest.raises(ValueError):
        parted.parse_print("Error: /dev/x: unrecognised disk label\n")


def test_parse_sfdisk_and_type_codes() -> None:
    dos = parted.parse_sfdisk(DOS_SFDISK)
    assert [(p.node, p.start, p.size, p.type) for p in dos] == [
        ("/dev/loop0p1", 1048576, 10485760, "83"), ("/dev/loop0p2", 11534336, 48465920, "f"),
        ("/dev/loop0p3", 61865984, 8388608, "c"), ("/dev/loop0p5", 12582912, 8388608, "82")]
    assert [parted.format_of(p.type) for p in dos] == [
        "linux", "extended", "fat32", "linux-swap"]
    gpt = parted.parse_sfdisk(GPT_SFDISK)
    assert [parted.format_of(p.type) for p in gpt] == ["linux", "linux-lvm"]
    assert parted.format_of("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7") == "none"
    assert parted.format_of("0x8e") == "linux-lvm"


def test_kernel_partition_names() -> None:
    assert parted.partition_name("sdb", 1) == "sdb1"
    assert parted.partition_name("nvme0n1", 1) == "nvme0n1p1"
    assert parted.partition_name("loop0", 12) == "loop0p12"
    assert parted.partition_name("mmcblk0", 2) == "mmcblk0p2"
    assert parted.partition_number("sdb", "sdb12") == 12
    assert parted.partition_number("loop0", "loop0p3") == 3
    assert parted.partition_number("loop0", "loop03") is None
    assert parted.partition_number("sdb", "sdc1") is None
    assert parted.partition_number("sdb", "sdb") is None
    assert parted.partition_number("sdb", "sdb01") is None


def _failed(stderr: str) -> HostCommandFailed:
    return HostCommandFailed("parted failed", argv=["parted"], returncode=1, stderr=stderr)


def test_classify_recorded_errors() -> None:
    assert isinstance(parted.classify(_failed(
        "Error: Partition(s) 1 on /dev/loop0 have been written, but we have been unable to "
        "inform the kernel of the change, probably because it/they are in use.\n"),
        device="/dev/loop0"), InUse)
    assert isinstance(parted.classify(_failed(
        "Error: Could not stat device /dev/nonexist - No such file or directory.\n"),
        device="/dev/nonexist"), NotFound)
    assert isinstance(parted.classify(_failed(
        "Error: The location 1000000000B is outside of the device /dev/loop0.\n"),
        device="/dev/loop0"), InvalidArgument)
    other = _failed("Error: Partition doesn't exist.\n")
    assert parted.classify(other, device="/dev/loop0") is other
