"""The scsi backend and kvmpool.host.scsi over a fake sysfs and /dev tree.

The real thing (scsi_debug, udev) is in tests/vm/test_scsi_pool.py. Here: adapter
resolution (name, parentaddr + unique_id, fc_host by wwnn/wwpn), the scan, the LU listing
(types, block devices, sizes, stable links), keys from scsi_id, the source-conflict rule,
the CLI (define, dump, start, vol-list, upload, download, wipe) and its one-line errors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kvmpool import caps
from kvmpool.backends import scsi as scsi_backend
from kvmpool.backends.base import Context
from kvmpool.backends.scsi import ScsiBackend
from kvmpool.caps import Ability
from kvmpool.errors import InvalidArgument, InvalidState, KvmpoolError, NotFound
from kvmpool.host import scsi
from kvmpool.host.run import Completed, Runner
from kvmpool.model import Adapter, PciAddress, PoolDef, PoolSource, PoolTarget, PoolType
from kvmpool.sources import same_adapter
from kvmpool.xml import format_pool, parse_pool
from tests.conftest import Kvmpool

MiB = 1 << 20
PCI = "0000:00:04.0"
WWNN, WWPN = "5001a4aa3d6d7e9f", "5001a4ab0b6fe2a0"


class Tree:
    """A fake /sys and /dev: host0 on PCI device 0000:00:04.0 (unique_id 1, no LUs), host2
    on scsi_debug's pseudo bus (unique_id 3) with LUs 2:0:0:0 and 2:0:0:1 (disks with
    by-id links), 2:0:0:2 (an enclosure, type 13), 2:0:1:0 (a CD, type 5, no link) and
    2:0:2:0 (a disk without a link); host7, a vHBA with WWNN/WWPN under FC host6."""

    def __init__(self, base: Path) -> None:
        self.sys = base / "sys"
        self.dev = base / "dev"
        self.by_id = self.dev / "disk" / "by-id"
        self.by_id.mkdir(parents=True)
        self.host(0, f"pci0000:00/{PCI}/virtio1/host0", unique_id=1)
        self.host(2, "pseudo_0/adapter0/host2", unique_id=3)
        self.host(6, "pci0000:00/0000:00:05.0/host6", unique_id=4)
        self.host(7, "pci0000:00/0000:00:05.0/host6/vport-6:0-0/host7", unique_id=5)
        self.fc_host(6, "0x20000000c9aabbcc", "0x10000000c9aabbcc", vport=True)
        self.fc_host(7, "0x" + WWNN.upper(), "0x" + WWPN)
        self.lu("2:0:0:0", 0, "sda", 16 * MiB, links=["scsi-35333333000002710",
                                                       "wwn-0x5333333000002710"])
        self.lu("2:0:0:1", 0, "sdb", 32 * MiB, links=["scsi-35333333000002711"])
        self.lu("2:0:0:2", 13, None, 0)
        self.lu("2:0:1:0", 5, "sr0", 2 * MiB)
        self.lu("2:0:2:0", 0, "sdc", 4 * MiB)
        self.lu("7:0:0:0", 0, "sdd", 8 * MiB, links=["scsi-3600a0b80"])
        (self.by_id / "scsi-35333333000002710-part1").symlink_to("../../sda1")
        (self.dev / "sda1").write_bytes(b"")

    def host(self, n: int, where: str, *, unique_id: int) -> None:
        real = self.sys / "devices" / where / "scsi_host" / f"host{n}"
        real.mkdir(parents=True)
        (real / "unique_id").write_text(f"{unique_id}\n")
        (real / "scan").write_text("")
        link = self.sys / "class" / "scsi_host" / f"host{n}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(real, link.parent))

    def fc_host(self, n: int, node: str, port: str, vport: bool = False) -> None:
        d = self.sys / "class" / "fc_host" / f"host{n}"
        d.mkdir(parents=True)
        (d / "node_name").write_text(node + "\n")
        (d / "port_name").write_text(port + "\n")
        if vport:
            (d / "vport_create").write_text("")

    def lu(self, hctl: str, kind: int, disk: str | None, size: int,
           links: list[str] | tuple[str, ...] = ()) -> None:
        d = self.sys / "bus" / "scsi" / "devices" / hctl
        d.mkdir(parents=True)
        (d / "type").write_text(f"{kind}\n")
        if disk is None:
            return
        (d / "block" / disk).mkdir(parents=True)
        (d / "block" / disk / "size").write_text(f"{size // 512}\n")
        with open(self.dev / disk, "wb") as f:
            f.truncate(size)
        for link in links:
            (self.by_id / link).symlink_to(f"../../{disk}")

    def scanned(self, n: int) -> str:
        return (self.sys / "class" / "scsi_host" / f"host{n}" / "scan").read_text()


class FakeScsiId(Runner):
    """scsi_id answers for the by-id links it knows; everything else (udevadm) succeeds."""

    def __init__(self, ids: dict[str, str] | None = None) -> None:
        super().__init__()
        self.ids = ids or {}
        self.argvs: list[tuple[str, ...]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None,
                 env: object = None) -> Completed:
        self.argvs.append(argv)
        if argv[0] == scsi.SCSI_ID:
            found = self.ids.get(argv[-1])
            if found is None:
                return Completed(argv, 1, "", "")
            return Completed(argv, 0, found, "")
        return Completed(argv, 0, "", "")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def _pool(tree: Tree, adapter: Adapter, target: str | None = None) -> PoolDef:
    return PoolDef(type=PoolType.SCSI, name="hba", uuid="00000000-0000-0000-0000-000000000000",
                   source=PoolSource(adapter=adapter),
                   target=PoolTarget(path=target or str(tree.by_id)))


def _backend(tree: Tree, runner: Runner | None = None) -> ScsiBackend:
    backend = ScsiBackend(Context(runner or FakeScsiId()))
    backend.sysfs = scsi.Sysfs(str(tree.sys))
    backend.dev_root = str(tree.dev)
    return backend


BY_NAME = Adapter(type="scsi_host", name="host2")
BY_PARENT = Adapter(type="scsi_host", unique_id=1, parent_address=PciAddress(0, 0, 4, 0))
FC = Adapter(type="fc_host", wwnn=WWNN, wwpn=WWPN)


# ---------------------------------------------------------------- kvmpool.host.scsi


def test_host_names_and_pci_addresses() -> None:
    assert [scsi.host_number(n) for n in ("host0", "scsi_host12", "fc_host3", "host",
                                          "sda", "host1x", "ahost1")] == [0, 12, 3, None,
                                                                          None, None, None]
    assert scsi.pci_address(0, 0x1a, 0x1f, 7) == "0000:1a:1f.7"
    assert scsi.same_wwn("0x5001A4AA", "5001a4aa") and not scsi.same_wwn("0x5001", "5002")


def test_sysfs_hosts_parents_and_luns(tree: Tree) -> None:
    sysfs = scsi.Sysfs(str(tree.sys))
    assert sysfs.hosts() == [0, 2, 6, 7]
    assert sysfs.unique_id(2) == 3 and sysfs.unique_id(9) is None
    assert sysfs.host_by_parent(PCI, 1) == 0
    assert sysfs.host_by_parent(PCI, 3) is None  # right device, wrong unique_id
    assert sysfs.host_by_parent("0000:00:04", 1) is None  # a whole component, not a prefix
    assert sysfs.host_by_parent("0000:00:05.0", 5) == 7  # the vHBA, below its FC host
    assert sysfs.fc_host_by_wwn(WWNN, WWPN) == 7
    assert sysfs.fc_host_by_wwn(WWNN, WWNN) is None
    assert sysfs.vport_capable() == [6]
    luns = sysfs.luns(2)
    assert [(lu.channel, lu.target, lu.lun, lu.type, lu.disk, lu.size) for lu in luns] == [
        (0, 0, 0, 0, "sda", 16 * MiB), (0, 0, 1, 0, "sdb", 32 * MiB),
        (0, 0, 2, 13, None, None), (0, 1, 0, 5, "sr0", 2 * MiB), (0, 2, 0, 0, "sdc", 4 * MiB)]
    assert sysfs.luns(0) == [] and scsi.Sysfs(str(tree.sys / "none")).luns(0) == []


def test_stable_links_one_per_device(tree: Tree) -> None:
    links = scsi.stable_links(str(tree.by_id), str(tree.dev))
    assert links == {"sda": str(tree.by_id / "scsi-35333333000002710"),  # first by name
                     "sda1": str(tree.by_id / "scsi-35333333000002710-part1"),
                     "sdb": str(tree.by_id / "scsi-35333333000002711"),
                     "sdd": str(tree.by_id / "scsi-3600a0b80")}
    assert scsi.stable_links(str(tree.dev / "nothing"), str(tree.dev)) == {}


def test_scsi_id_argv_and_parsers() -> None:
    assert scsi.scsi_id_argv("/dev/sdb", export=True) == [
        "/lib/udev/scsi_id", "--replace-whitespace", "--whitelisted", "--export",
        "--device", "/dev/sdb"]
    assert scsi.parse_scsi_id("0QEMU_QEMU_HARDDISK_drive0\n") == "0QEMU_QEMU_HARDDISK_drive0"
    assert scsi.parse_scsi_id("\n") is None
    export = "ID_SCSI=1\nID_VENDOR=IBM\nID_SERIAL=3600a0b80\nID_TARGET_PORT=1\n"
    assert scsi.parse_npiv_key(export) == "3600a0b80_PORT1"
    assert scsi.parse_npiv_key("ID_SERIAL=3600a0b80\n") is None


# ---------------------------------------------------------------- the backend


def test_adapter_resolution(tree: Tree) -> None:
    b = _backend(tree)
    assert b.host(_pool(tree, BY_NAME)) == 2
    assert b.host(_pool(tree, Adapter(type="scsi_host", name="scsi_host2"))) == 2
    assert b.host(_pool(tree, BY_PARENT)) == 0
    assert b.host(_pool(tree, FC)) == 7
    with pytest.raises(NotFound, match=r"^SCSI host 'host9' does not exist$"):
        b.host(_pool(tree, Adapter(type="scsi_host", name="host9")))
    with pytest.raises(InvalidArgument, match="invalid adapter name 'sda' for a SCSI pool"):
        b.host(_pool(tree, Adapter(type="scsi_host", name="sda")))
    wrong_id = Adapter(type="scsi_host", unique_id=2, parent_address=PciAddress(0, 0, 4, 0))
    with pytest.raises(NotFound, match=f"no SCSI host under PCI device {PCI} has unique_id 2"):
        b.host(_pool(tree, wrong_id))


def test_fc_host_without_its_vhba_says_what_is_needed(tree: Tree) -> None:
    b = _backend(tree)
    missing = _pool(tree, Adapter(type="fc_host", wwnn="2001001b32a9da4e",
                                  wwpn="2101001b32a90000"))
    with pytest.raises(InvalidState) as err:
        b.start(missing)
    assert str(err.value) == (
        "no vHBA with wwnn 2001001b32a9da4e and wwpn 2101001b32a90000 exists; "
        "creating a vHBA needs Fibre Channel hardware with NPIV")
    assert err.value.hint is not None and "vport_create" in err.value.hint
    assert not b.check(missing)
    b.sysfs = scsi.Sysfs(str(tree.sys / "empty"))
    with pytest.raises(InvalidState, match=r"with NPIV, and this host has none$"):
        b.start(missing)


def test_check_start_stop(tree: Tree) -> None:
    b = _backend(tree)
    for adapter in (BY_NAME, BY_PARENT, FC):
        assert b.check(_pool(tree, adapter))
        b.start(_pool(tree, adapter))
        b.stop(_pool(tree, adapter))
    assert not b.check(_pool(tree, Adapter(type="scsi_host", name="host9")))
    assert tree.scanned(2) == ""  # start leaves the scan to the first refresh


def test_refresh_scans_and_lists_disks_with_stable_links(tree: Tree) -> None:
    a, b_ = str(tree.by_id / "scsi-35333333000002710"), str(tree.by_id / "scsi-35333333000002711")
    runner = FakeScsiId({a: "35333333000002710\n"})
    backend = _backend(tree, runner)
    pool = _pool(tree, BY_NAME)
    live = backend.refresh(pool)
    assert tree.scanned(2) == "- - -"
    if shutil.which("udevadm"):
        assert ("udevadm", "settle", "--timeout=10") in runner.argvs
    vols = backend.list_volumes(pool, details=True)
    # the enclosure (type 13), the CD and the disk without a link are left out
    assert [(v.name, v.target.path, v.key, v.capacity, v.allocation, v.type.value)
            for v in vols] == [
        ("unit:0:0:0", a, "35333333000002710", 16 * MiB, 16 * MiB, "block"),
        ("unit:0:0:1", b_, b_, 32 * MiB, 32 * MiB, "block"),  # no scsi_id answer: the path
    ]
    assert (live.capacity, live.allocation, live.available) == (48 * MiB, 48 * MiB, 0)
    for spec in ("unit:0:0:1", b_, "scsi-35333333000002711"):
        found = backend.volume(pool, spec)
        assert found is not None and found.name == "unit:0:0:1"
    assert backend.volume(pool, "35333333000002710") is not None  # by key
    assert backend.volume(pool, "unit:0:2:0") is None


def test_target_dev_lists_every_disk_and_rom(tree: Tree) -> None:
    vols = _backend(tree).list_volumes(_pool(tree, BY_NAME, str(tree.dev)), details=True)
    assert [(v.name, v.target.path) for v in vols] == [
        ("unit:0:0:0", str(tree.dev / "sda")), ("unit:0:0:1", str(tree.dev / "sdb")),
        ("unit:0:1:0", str(tree.dev / "sr0")), ("unit:0:2:0", str(tree.dev / "sdc"))]


def test_target_outside_dev_is_refused(tree: Tree) -> None:
    with pytest.raises(InvalidArgument, match="target path '/srv/x' of pool 'hba' is not a "
                                              "directory of device nodes or links"):
        _backend(tree).list_volumes(_pool(tree, BY_NAME, "/srv/x"), details=False)


def test_fc_host_keys_are_npiv_keys(tree: Tree) -> None:
    link = str(tree.by_id / "scsi-3600a0b80")
    runner = FakeScsiId({link: "ID_SERIAL=3600a0b80\nID_TARGET_PORT=1\n"})
    vols = _backend(tree, runner).list_volumes(_pool(tree, FC), details=True)
    assert [(v.name, v.key) for v in vols] == [("unit:0:0:0", "3600a0b80_PORT1")]
    assert "--export" in runner.argvs[-1]


def test_wipe_zeroes_the_whole_lun(tree: Tree) -> None:
    backend = _backend(tree)
    pool = _pool(tree, BY_NAME)
    (tree.dev / "sdb").write_bytes(os.urandom(32 * MiB))
    vol = backend.volume(pool, "unit:0:0:1")
    assert vol is not None
    backend.wipe_volume(pool, vol, "zero", None)
    data = (tree.dev / "sdb").read_bytes()
    assert len(data) == 32 * MiB and data.count(0) == len(data)
    (tree.dev / "sdb").unlink()  # gone under our feet: one clear error
    with pytest.raises(KvmpoolError,
                       match=r"^cannot wipe \S+/scsi-35333333000002711: No such file"):
        backend.wipe_volume(pool, vol, "zero", None)


def test_scsi_caps() -> None:
    row = caps.caps(PoolType.SCSI)
    assert row.has_backend and row.abilities == {Ability.WIPE, Ability.UPLOAD,
                                                  Ability.DOWNLOAD}
    assert "trim" not in row.wipe_algorithms and "zero" in row.wipe_algorithms


# ---------------------------------------------------------------- source conflicts


@pytest.mark.parametrize(("a", "b", "conflict"), [
    (BY_NAME, Adapter(type="scsi_host", name="host2"), True),
    (BY_NAME, Adapter(type="scsi_host", name="scsi_host2"), True),
    (BY_NAME, Adapter(type="scsi_host", name="host3"), False),
    (BY_PARENT, Adapter(type="scsi_host", unique_id=1, parent_address=PciAddress(0, 0, 4, 0)),
     True),
    (BY_PARENT, Adapter(type="scsi_host", unique_id=2, parent_address=PciAddress(0, 0, 4, 0)),
     False),
    (BY_PARENT, Adapter(type="scsi_host", name="host0"), True),  # the same host, resolved
    (BY_PARENT, Adapter(type="scsi_host", name="host2"), False),
    (FC, Adapter(type="fc_host", wwnn=WWNN.upper(), wwpn=WWPN), True),
    (FC, Adapter(type="fc_host", wwnn=WWNN, wwpn=WWNN), False),
    (FC, Adapter(type="scsi_host", name="host7"), True),  # the existing vHBA is that host
    (Adapter(type="fc_host", wwnn="2001", wwpn="2101", parent="host6"),
     Adapter(type="scsi_host", name="host6"), True),  # the vHBA's parent
    (Adapter(type="fc_host", wwnn="2001", wwpn="2101"),
     Adapter(type="scsi_host", name="host6"), False),
])
def test_source_conflicts(tree: Tree, a: Adapter, b: Adapter, conflict: bool) -> None:
    sysfs = scsi.Sysfs(str(tree.sys))
    assert same_adapter(a, b, sysfs) is conflict
    assert same_adapter(b, a, sysfs) is conflict


# ---------------------------------------------------------------- XML and the CLI


def test_adapters_round_trip_through_the_xml() -> None:
    doc = (b"<pool type='scsi'><name>hba</name><source><adapter type='scsi_host'>"
           b"<parentaddr unique_id='1'><address domain='0x0000' bus='0x00' slot='0x04' "
           b"function='0x0'/></parentaddr></adapter></source>"
           b"<target><path>/dev/disk/by-path</path></target></pool>")
    pool = parse_pool(doc)
    assert pool.source.adapter == BY_PARENT
    assert parse_pool(format_pool(pool).encode()).source.adapter == BY_PARENT


def test_cli_errors_are_one_line(kvmpool: Kvmpool) -> None:
    """On this machine's real (empty) sysfs."""
    kvmpool("pool-define-as", "bad", "scsi", "--adapter-name", "host97", "--target",
            "/dev/disk/by-path")
    dumped = kvmpool("pool-dumpxml", "bad").out
    assert "<adapter type='scsi_host' name='host97'/>" in dumped
    kvmpool("pool-define-as", "fc", "scsi", "--adapter-wwnn", WWNN, "--adapter-wwpn", WWPN,
            "--target", "/dev/disk/by-path")
    assert f"<adapter type='fc_host' wwnn='{WWNN}' wwpn='{WWPN}'/>" in kvmpool(
        "pool-dumpxml", "fc").out
    if os.path.exists("/sys/class/scsi_host/host97"):
        pytest.skip("this machine has a host97")
    err = kvmpool("pool-start", "bad", ok=False)
    assert err.code != 0 and err.err == (
        "error: Failed to start pool bad: SCSI host 'host97' does not exist "
        "(hint: list the hosts with: ls /sys/class/scsi_host)\n")
    err = kvmpool("pool-start", "fc", ok=False)
    assert err.code != 0 and len(err.err.splitlines()) == 1
    assert "creating a vHBA needs Fibre Channel hardware with NPIV" in err.err
    assert "inactive" in kvmpool("pool-list", "--all").out


def test_cli_lifecycle_over_the_fake_tree(kvmpool: Kvmpool, tree: Tree, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = scsi.Sysfs
    monkeypatch.setattr(scsi, "Sysfs", lambda root="/sys": real(str(tree.sys)))
    monkeypatch.setattr(ScsiBackend, "dev_root", str(tree.dev))
    monkeypatch.setattr(scsi_backend.udev, "settle", lambda runner: None)
    kvmpool("pool-define-as", "hba", "scsi", "--adapter-name", "host2", "--target",
            str(tree.by_id))
    err = kvmpool("pool-define-as", "again", "scsi", "--adapter-name", "scsi_host2",
                  "--target", str(tree.by_id), ok=False).err
    assert "hba" in err and len(err.splitlines()) == 1
    kvmpool("pool-start", "hba")
    assert tree.scanned(2) == "- - -"
    out = kvmpool("vol-list", "hba", "--details").out
    assert "unit:0:0:0" in out and "16.00 MiB" in out and "32.00 MiB" in out
    assert "unit:0:2:0" not in out
    link = str(tree.by_id / "scsi-35333333000002711")
    assert kvmpool("vol-path", "unit:0:0:1", "--pool", "hba").out.strip() == link
    assert kvmpool("vol-name", link).out.strip() == "unit:0:0:1"
    data = tmp_path / "data"
    data.write_bytes(os.urandom(MiB))
    kvmpool("vol-upload", "unit:0:0:1", str(data), "--pool", "hba")
    back = tmp_path / "back"
    kvmpool("vol-download", "unit:0:0:1", str(back), "--pool", "hba", "--length", str(MiB))
    assert back.read_bytes() == data.read_bytes()
    kvmpool("vol-wipe", "unit:0:0:1", "--pool", "hba")
    assert (tree.dev / "sdb").read_bytes().count(0) == 32 * MiB
    err = kvmpool("vol-wipe", "unit:0:0:1", "--pool", "hba", "--algorithm", "trim",
                  ok=False).err
    assert "cannot wipe with 'trim'" in err
    err = kvmpool("vol-create-as", "hba", "new", "1M", ok=False).err
    assert "pool 'hba' (scsi) cannot create volumes" in err
    kvmpool("pool-destroy", "hba")
