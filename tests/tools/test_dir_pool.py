"""dir pools end to end through the CLI, on real directories with real qemu-img."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from kvmpool import xml
from kvmpool.errors import LockBusy
from kvmpool.lock import locked
from tests.conftest import Kvmpool, tree

pytestmark = pytest.mark.tools
MiB = 1024 * 1024
CORPUS = Path(__file__).parent.parent / "data" / "libvirt-xml"


@pytest.fixture
def pool(kvmpool: Kvmpool, tmp_path: Path) -> Path:
    target = tmp_path / "images"
    kvmpool("pool-define-as", "guest", "dir", "--target", str(target))
    kvmpool("pool-build", "guest")
    kvmpool("pool-start", "guest")
    return target


def qemu_info(path: Path) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_the_virsh_story_on_a_dir_pool(kvmpool: Kvmpool, tmp_path: Path) -> None:
    target = tmp_path / "images"
    out = kvmpool("pool-define-as", "guest", "--type", "dir", "--target", str(target)).out
    assert out == "Pool guest defined\n\n"
    assert kvmpool("pool-build", "guest").out == "Pool guest built\n\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o711
    assert kvmpool("pool-start", "guest").out == "Pool guest started\n\n"
    kvmpool("pool-autostart", "guest")
    link = kvmpool.root / "config" / "storage" / "autostart" / "guest.xml"
    assert os.path.realpath(link) == str(kvmpool.root / "config" / "storage" / "guest.xml")
    assert kvmpool("pool-list", "--all").out == (
        " Name    State    Autostart\n"
        "-----------------------------\n"
        " guest   active   yes\n\n")
    assert kvmpool("vol-create-as", "guest", "vm1", "10M").out == "Vol vm1 created\n\n"
    assert kvmpool("vol-list", "guest").out == (
        " Name   Path\n"
        + "-" * (len(str(target / "vm1")) + 10) + "\n"
        + f" vm1    {target / 'vm1'}\n\n")
    kvmpool("pool-destroy", "guest")
    err = kvmpool("vol-list", "guest", ok=False).err
    assert "storage pool 'guest' is not active" in err
    kvmpool("pool-start", "guest")
    err = kvmpool("pool-delete", "guest", ok=False).err
    assert "still active" in err
    kvmpool("pool-destroy", "guest")
    err = kvmpool("pool-delete", "guest", ok=False).err
    assert "Directory not empty" in err and (target / "vm1").exists()
    kvmpool("pool-start", "guest")
    kvmpool("vol-delete", "vm1", "--pool", "guest")
    kvmpool("pool-destroy", "guest")
    kvmpool("pool-delete", "guest")
    assert not target.exists()
    assert kvmpool("pool-undefine", "guest").out == "Pool guest has been undefined\n\n"
    assert not link.exists()
    assert kvmpool("pool-list", "--all", "--name").out == "\n"


def test_volume_sizes_are_computed_as_libvirt_does(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "full.img", "10M")
    kvmpool("vol-create-as", "guest", "sparse.img", "10M", "--allocation", "0")
    kvmpool("vol-create-as", "guest", "half.img", "10M", "--allocation", "4M")
    kvmpool("vol-create-as", "guest", "q.qcow2", "20M", "--format", "qcow2")
    kvmpool("vol-create-as", "guest", "o.qcow2", "30M", "--format", "qcow2",
            "--backing-vol", "q.qcow2")
    for name in ("full.img", "sparse.img", "half.img", "q.qcow2", "o.qcow2"):
        st = (pool / name).stat()
        info = kvmpool("vol-info", name, "--pool", "guest", "--bytes").out
        capacity = int(qemu_info(pool / name)["virtual-size"])  # type: ignore[call-overload]
        assert info == (f"Name:           {name}\nType:           file\n"
                        f"Capacity:       {capacity} bytes\n"
                        f"Allocation:     {st.st_blocks * 512} bytes\n\n")
        assert stat.S_IMODE(st.st_mode) == 0o600
    assert (pool / "full.img").stat().st_blocks * 512 >= 10 * MiB
    assert (pool / "sparse.img").stat().st_blocks == 0
    assert 4 * MiB <= (pool / "half.img").stat().st_blocks * 512 < 10 * MiB
    overlay = qemu_info(pool / "o.qcow2")
    assert overlay["backing-filename"] == str(pool / "q.qcow2")
    assert overlay["backing-filename-format"] == "qcow2"  # virsh would have written raw
    details = kvmpool("vol-list", "guest", "--details").out.splitlines()
    assert details[0].split() == ["Name", "Path", "Type", "Capacity", "Allocation"]
    assert details[2].split()[:5] == ["full.img", str(pool / "full.img"), "file", "10.00", "MiB"]
    data = json.loads(kvmpool("vol-list", "guest", "--json").out)
    assert {v["name"]: v["format"] for v in data} == {
        "full.img": "raw", "half.img": "raw", "sparse.img": "raw", "q.qcow2": "qcow2",
        "o.qcow2": "qcow2"}
    statvfs = os.statvfs(pool)
    info = json.loads(kvmpool("pool-info", "guest", "--json").out)
    assert info["capacity"] == statvfs.f_frsize * statvfs.f_blocks
    assert info["allocation"] + info["available"] == info["capacity"]


def test_everything_printed_validates_against_libvirts_schemas(
    kvmpool: Kvmpool, pool: Path
) -> None:
    kvmpool("vol-create-as", "guest", "a.img", "1M")
    kvmpool("vol-create-as", "guest", "b.qcow2", "1M", "--format", "qcow2")
    kvmpool("vol-create-as", "guest", "c.qcow2", "1M", "--format", "qcow2", "--backing-vol",
            "b.qcow2")
    kvmpool("vol-create-as", "guest", "d", "0", "--format", "dir")
    xml.validate(kvmpool("pool-dumpxml", "guest").out, "pool")
    xml.validate(kvmpool("pool-dumpxml", "guest", "--inactive").out, "pool")
    xml.validate(kvmpool("pool-define-as", "x", "dir", "--target", "/t", "--print-xml").out, "pool")
    for name in ("a.img", "b.qcow2", "c.qcow2", "d"):
        xml.validate(kvmpool("vol-dumpxml", name, "--pool", "guest").out, "volume")
    xml.validate(kvmpool("vol-create-as", "guest", "e", "1M", "--print-xml").out, "volume")
    schema = etree.RelaxNG(etree.parse("/usr/share/libvirt/schemas/storagepoolcaps.rng"))
    caps = etree.fromstring(kvmpool("pool-capabilities").out.encode())
    assert schema.validate(caps), schema.error_log


@pytest.mark.parametrize(
    "args",
    [
        ["vol-create-as", "guest", "../escape", "1M"],
        ["vol-create-as", "guest", "a/b", "1M"],
        ["vol-create-as", "guest", "..", "1M"],
        ["vol-create-as", "guest", "x" * 300, "1M"],
        ["vol-create-as", "guest", "vm1", "1M"],
        ["vol-create-as", "guest", "new", "1.5G"],
        ["vol-create-as", "guest", "new", "1M", "--format", "nosuch"],
        ["vol-create-as", "guest", "new", "1M", "--prealloc-metadata"],
        ["vol-create-as", "guest", "new", "1M", "--backing-vol", "vm1"],
        ["vol-create-as", "nosuch", "new", "1M"],
        ["vol-delete", "nosuch", "--pool", "guest"],
        ["vol-info", "/etc/passwd"],
        ["pool-info", "nosuch"],
        ["pool-start", "guest"],
        ["pool-delete", "guest"],
        ["pool-undefine", "guest"],
        ["pool-build", "guest", "--overwrite"],
        ["pool-define-as", "dup", "dir", "--target", "SAME"],
        ["pool-define-as", "guest", "dir", "--target", "/elsewhere"],
        ["pool-define-as", "bad/name", "dir", "--target", "/elsewhere"],
        ["pool-define-as", "x", "nosuchtype", "--target", "/elsewhere"],
        ["pool-define", "MALFORMED"],
        ["pool-define", "NOTARGET"],
        ["pool-list", "--type", "nosuch"],
        ["nosuch-command"],
        ["vol-list"],
    ],
)
def test_bad_input_gives_one_line_and_changes_nothing(
    kvmpool: Kvmpool, pool: Path, tmp_path: Path, args: list[str]
) -> None:
    kvmpool("vol-create-as", "guest", "vm1", "1M")
    (tmp_path / "bad.xml").write_text("<pool type='dir'>\n  <name>x</name>\n  <target>\n")
    (tmp_path / "notarget.xml").write_text("<pool type='dir'><name>y</name><target/></pool>")
    args = [str(tmp_path / "bad.xml") if a == "MALFORMED" else a for a in args]
    args = [str(tmp_path / "notarget.xml") if a == "NOTARGET" else a for a in args]
    args = [str(pool) if a == "SAME" else a for a in args]
    before = tree(tmp_path)
    result = kvmpool(*args, ok=False)
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    assert tree(tmp_path) == before


def test_malformed_xml_error_names_the_line(kvmpool: Kvmpool, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<pool type='dir'>\n  <name>x</name>\n  <target>\n")
    err = kvmpool("pool-define", str(bad), ok=False).err
    assert "line" in err


def test_dry_run_prints_and_changes_nothing(kvmpool: Kvmpool, pool: Path, tmp_path: Path) -> None:
    kvmpool("vol-create-as", "guest", "keep", "1M")
    before = tree(tmp_path)
    out = kvmpool("--dry-run", "vol-create-as", "guest", "new.qcow2", "1M", "--format",
                  "qcow2").out
    assert "would create qcow2 volume" in out
    out = kvmpool("--dry-run", "vol-delete", "keep", "--pool", "guest").out
    assert f"would remove {pool / 'keep'}" in out
    kvmpool("--dry-run", "pool-destroy", "guest")
    kvmpool("--dry-run", "pool-autostart", "guest")
    kvmpool("--dry-run", "pool-define-as", "other", "dir", "--target", str(tmp_path / "o"))
    assert tree(tmp_path) == before


def test_a_pool_whose_directory_vanished_is_inactive(kvmpool: Kvmpool, pool: Path) -> None:
    os.rmdir(pool)
    assert " guest   inactive   no" in kvmpool("pool-list", "--all").out
    err = kvmpool("pool-start", "guest", ok=False).err
    assert "No such file or directory" in err
    kvmpool("pool-start", "guest", "--build")
    assert pool.is_dir()


def test_transient_pool_is_gone_after_destroy(kvmpool: Kvmpool, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    kvmpool("pool-create-as", "tmp", "dir", "--target", str(target))
    assert " tmp    running   no          no " in kvmpool("pool-list", "--details").out
    err = kvmpool("pool-autostart", "tmp", ok=False).err
    assert "transient" in err
    kvmpool("pool-destroy", "tmp")
    assert "tmp" not in kvmpool("pool-list", "--all").out
    assert target.is_dir()


def test_transient_pool_whose_directory_vanished_can_be_created_again(
        kvmpool: Kvmpool, tmp_path: Path) -> None:
    """A transient pool whose storage is gone is gone (as libvirt drops it): it is not
    listed, and its name and source are free again, not blocked by its leftover state."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    kvmpool("pool-create-as", "tmp", "dir", "--target", str(first))
    first.rmdir()
    assert "tmp" not in kvmpool("pool-list", "--all").out
    assert "not found" in kvmpool("pool-info", "tmp", ok=False).err
    assert kvmpool("pool-create-as", "tmp", "dir", "--target", str(second)).out == (
        "Pool tmp created\n\n")
    assert " tmp    active   no" in kvmpool("pool-list").out
    first.mkdir()  # the old target again: a new pool may use it, nothing claims it
    kvmpool("pool-define-as", "other", "dir", "--target", str(first))


def test_failed_creation_leaves_nothing(kvmpool: Kvmpool, pool: Path, tmp_path: Path) -> None:
    bad = tmp_path / "vol.xml"
    bad.write_text("<volume><name>c.qcow2</name><capacity>1048576</capacity>"
                   "<target><format type='qcow2'/><clusterSize>1000</clusterSize></target>"
                   "</volume>")
    err = kvmpool("vol-create", "guest", str(bad), ok=False).err
    assert err.startswith("error: Failed to create vol from")
    assert os.listdir(pool) == []


def test_define_redefine_and_uuid_rules(kvmpool: Kvmpool, pool: Path, tmp_path: Path) -> None:
    uuid = kvmpool("pool-uuid", "guest").out.strip()
    assert kvmpool("pool-name", uuid).out == "guest\n\n"
    assert kvmpool("pool-info", uuid).out.startswith("Name:           guest\n")
    doc = kvmpool("pool-dumpxml", "guest", "--inactive").out
    other = tmp_path / "other.xml"
    other.write_text(doc.replace("<name>guest</name>", "<name>renamed</name>"))
    err = kvmpool("pool-define", str(other), ok=False).err
    assert f"pool 'guest' is already defined with uuid {uuid}" in err
    # Redefining an active pool keeps the live definition until it stops.
    moved = tmp_path / "moved.xml"
    moved.write_text(doc.replace(str(pool), str(tmp_path / "moved")))
    kvmpool("pool-define", str(moved))
    assert str(pool) in kvmpool("pool-dumpxml", "guest").out
    assert str(tmp_path / "moved") in kvmpool("pool-dumpxml", "guest", "--inactive").out
    kvmpool("pool-destroy", "guest")
    assert str(tmp_path / "moved") in kvmpool("pool-dumpxml", "guest").out


@pytest.mark.parametrize(
    "case", sorted(p.stem for p in (CORPUS / "storagepoolxml2xmlout").glob("*.xml")))
def test_every_libvirt_pool_definition_is_kept_exactly(kvmpool: Kvmpool, case: str) -> None:
    """pool-define + pool-dumpxml --inactive reproduce libvirt's own expected output."""
    kvmpool("pool-define", str(CORPUS / "storagepoolxml2xmlin" / f"{case}.xml"))
    expected = (CORPUS / "storagepoolxml2xmlout" / f"{case}.xml").read_text()
    name = xml.parse_pool(expected).name
    assert kvmpool("pool-dumpxml", name, "--inactive").out == expected + "\n"
    assert name in kvmpool("pool-list", "--all").out


def test_import_from_libvirt(kvmpool: Kvmpool, tmp_path: Path) -> None:
    etc = tmp_path / "etc-libvirt-storage"
    (etc / "autostart").mkdir(parents=True)
    src = (CORPUS / "storagepoolxml2xmlout" / "pool-dir.xml").read_text()
    name = xml.parse_pool(src).name
    (etc / f"{name}.xml").write_text("<!--\nWARNING: generated by libvirt\n-->\n" + src)
    os.symlink(f"../{name}.xml", etc / "autostart" / f"{name}.xml")
    netfs = (CORPUS / "storagepoolxml2xmlout" / "pool-netfs.xml").read_text()
    (etc / f"{xml.parse_pool(netfs).name}.xml").write_text(netfs)
    kvmpool("pool-import-libvirt", str(etc))
    listing = kvmpool("pool-list", "--all", "--details").out
    assert f" {name} " in listing
    data = {p["name"]: p for p in json.loads(kvmpool("pool-list", "--all", "--json").out)}
    assert data[name]["autostart"] is True
    assert len(data) == 2
    assert "No new pools" in kvmpool("pool-import-libvirt", str(etc)).out


def test_pool_edit_saves_only_valid_xml(
    kvmpool: Kvmpool, pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's|<path>.*</path>|<path>/srv/new</path>|' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    assert "XML configuration edited" in kvmpool("pool-edit", "guest").out
    assert "/srv/new" in kvmpool("pool-dumpxml", "guest", "--inactive").out
    editor.write_text("#!/bin/sh\nsed -i 's|<target>||' \"$1\"\n")
    before = kvmpool("pool-dumpxml", "guest", "--inactive").out
    err = kvmpool("pool-edit", "guest", ok=False).err
    assert err.startswith("error: Failed to edit pool guest") and "kept in" in err
    assert kvmpool("pool-dumpxml", "guest", "--inactive").out == before
    editor.write_text("#!/bin/sh\ntrue\n")
    assert "not changed" in kvmpool("pool-edit", "guest").out


def test_pool_lock_excludes_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from kvmpool.lock import locked\n"
         f"with locked({str(tmp_path)!r}, 'p', what='pool'):\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockBusy, match="busy"), locked(str(tmp_path), "p", what="pool",
                                                            wait=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    with locked(str(tmp_path), "p", what="pool", wait=5):
        pass


def test_python_m_kvmpool_and_json_everywhere(tmp_path: Path) -> None:
    env = dict(os.environ, KVMPOOL_ROOT=str(tmp_path / "root"))
    run = subprocess.run([sys.executable, "-m", "kvmpool", "pool-list", "--all", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    assert json.loads(run.stdout) == []
    caps = subprocess.run([sys.executable, "-m", "kvmpool", "pool-capabilities", "--json"],
                          capture_output=True, text=True, env=env, check=True)
    assert {c["type"]: c["supported"] for c in json.loads(caps.stdout)}["dir"] is True


def test_debug_shows_the_host_command(kvmpool: Kvmpool, pool: Path, tmp_path: Path) -> None:
    bad = tmp_path / "vol.xml"
    bad.write_text("<volume><name>c.qcow2</name><capacity>1048576</capacity>"
                   "<target><format type='qcow2'/><clusterSize>1000</clusterSize></target>"
                   "</volume>")
    err = kvmpool("--debug", "vol-create", "guest", str(bad), ok=False).err
    assert "debug: ran qemu-img create" in err and "exit 1" in err


def test_damaged_images_are_listed_as_such(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "good.qcow2", "1M", "--format", "qcow2")
    (pool / "trunc.qcow2").write_bytes((pool / "good.qcow2").read_bytes()[:100])
    (pool / "hostile.qcow2").write_bytes(b"QFI\xfb\x00\x00\x00\x03" + b"\xff" * 2000)
    result = kvmpool("vol-list", "guest", "--details")
    assert "volume 'trunc.qcow2' looks damaged" in result.err
    assert "volume 'hostile.qcow2' looks damaged" in result.err
    assert " good.qcow2 " in result.out and " trunc.qcow2 " in result.out
    data = {v["name"]: v for v in json.loads(kvmpool("vol-list", "guest", "--json").out)}
    assert data["good.qcow2"]["problem"] is None
    assert data["hostile.qcow2"]["problem"] and data["hostile.qcow2"]["capacity"] == 0
