"""kvmpool and a real libvirtd, side by side on the same directory: same numbers, same text.

One walkthrough (module scope): a private libvirtd (``tests/libvirtd.py``) and kvmpool
(its own KVMPOOL_ROOT) each define, build and start a dir pool on one target directory.
virsh creates ``v-*`` volumes, kvmpool creates ``k-*`` twins with the same arguments, and
plain qemu-img adds ``x-*`` files behind both their backs. After ``virsh pool-refresh`` (so
libvirt's view of every volume comes from the disk, like kvmpool's), every read command is
compared. If libvirtd cannot start, every test here FAILS: a comparison that silently skips
proves nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.libvirtd import Libvirtd, LibvirtdError

pytestmark = pytest.mark.tools

MiB = 1024 * 1024

# name, capacity, options of ``vol-create-as POOL NAME CAPACITY ...`` ({p}: the side's prefix)
VOLUMES: list[tuple[str, str, list[str]]] = [
    ("raw.img", "10M", []),
    ("sparse.img", "10M", ["--allocation", "0"]),
    ("part.img", "10M", ["--allocation", "4M"]),
    ("q.qcow2", "20M", ["--format", "qcow2"]),
    ("prealloc.qcow2", "20M", ["--format", "qcow2", "--prealloc-metadata"]),
    ("meta.qcow2", "20M", ["--format", "qcow2", "--allocation", "0", "--prealloc-metadata"]),
    ("old.qcow", "5M", ["--format", "qcow"]),
    ("d.vmdk", "5M", ["--format", "vmdk"]),
    ("d.vdi", "5M", ["--format", "vdi"]),
    ("d.vpc", "5M", ["--format", "vpc"]),
    ("d.qed", "5M", ["--format", "qed"]),
    ("backed.qcow2", "20M",
     ["--format", "qcow2", "--backing-vol", "{p}q.qcow2", "--backing-vol-format", "qcow2"]),
    ("adir", "1M", ["--format", "dir"]),
]
# made by plain qemu-img (qcow2 v3 as qemu defaults to, with and without features)
EXTERNAL: list[tuple[str, list[str]]] = [
    ("x-v3.qcow2", ["-f", "qcow2", "{dir}/x-v3.qcow2", "7M"]),
    ("x-lazy.qcow2", ["-f", "qcow2", "-o", "lazy_refcounts=on", "{dir}/x-lazy.qcow2", "3M"]),
    ("x-v2.qcow2", ["-f", "qcow2", "-o", "compat=0.10", "{dir}/x-v2.qcow2", "6M"]),
]
ALL_VOLUMES = ([f"v-{n}" for n, _, _ in VOLUMES] + [f"k-{n}" for n, _, _ in VOLUMES]
               + [n for n, _ in EXTERNAL])

# pool-info's allocation and available are statvfs of the target's file system, read at
# two different moments by two programs. Anything else writing to that file system in
# between (other tests, builds, logs: it is the host's root fs) moves them, so they are
# compared within this tolerance, and kvmpool's value must lie between two virsh readings
# taken before and after it (widened by the tolerance). Capacity (f_blocks) cannot drift.
POOL_TOLERANCE = 64 * MiB


def kvmpool_argv() -> list[str]:
    script = Path(sys.executable).with_name("kvmpool")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmpool"]


@dataclass
class Walk:
    lv: Libvirtd | None = None
    error: str | None = None
    root: Path = Path()
    target: Path = Path()
    pool: str = ""
    # libvirt's vol-dumpxml of each v-* volume right after virsh created it (no refresh yet)
    before_refresh: dict[str, str] = field(default_factory=dict)

    def ok(self) -> Libvirtd:
        """The daemon, or FAIL the calling test (never skip) with why it is missing."""
        if self.error is not None or self.lv is None:
            pytest.fail(f"libvirtd comparison not possible: {self.error}", pytrace=False)
        return self.lv

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ok().virsh(*args, check=check)

    def kvmpool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KVMPOOL_ROOT": str(self.root), "LC_ALL": "C"}
        res = subprocess.run([*kvmpool_argv(), *args], capture_output=True, text=True,
                             env=env, check=False, timeout=600)
        if check and res.returncode != 0:
            raise AssertionError(f"kvmpool {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stderr}{res.stdout}")
        return res


def _vol_args(pool: str, prefix: str, name: str, cap: str, opts: list[str]) -> list[str]:
    return ["vol-create-as", pool, prefix + name, cap, *(o.format(p=prefix) for o in opts)]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    w = Walk()
    base = tmp_path_factory.mktemp("vs-libvirt")
    w.root = base / "kvmpool-root"
    w.target = base / "images"
    lv = Libvirtd()
    try:
        lv.start()
    except LibvirtdError as err:
        w.error = str(err)
        yield w
        return
    w.lv = lv
    try:
        w.pool = lv.pool_name("walk")
        w.virsh("pool-define-as", w.pool, "dir", "--target", str(w.target))
        w.virsh("pool-build", w.pool)
        w.virsh("pool-start", w.pool)
        # kvmpool gets virsh's own definition (same name, same uuid) on the same directory
        xml_file = base / "pool.xml"
        xml_file.write_text(w.virsh("pool-dumpxml", "--inactive", w.pool).stdout)
        w.kvmpool("pool-define", str(xml_file))
        w.kvmpool("pool-build", w.pool)
        w.kvmpool("pool-start", w.pool)
        for name, cap, opts in VOLUMES:
            w.virsh(*_vol_args(w.pool, "v-", name, cap, opts))
            w.before_refresh["v-" + name] = w.virsh("vol-dumpxml", "v-" + name,
                                                    "--pool", w.pool).stdout
        for name, cap, opts in VOLUMES:
            w.kvmpool(*_vol_args(w.pool, "k-", name, cap, opts))
        for _name, argv in EXTERNAL:
            subprocess.run(["qemu-img", "create", "-q", *(a.format(dir=w.target) for a in argv)],
                           check=True)
        # libvirt keeps the definition it created a volume from until the next refresh
        # (e.g. no <clusterSize> for a qcow2 it just made); refresh so both read the disk.
        w.virsh("pool-refresh", w.pool)
        # first reads after creation update atime (relatime); do them now, so that the
        # <timestamps> compared below are not changed by the comparison itself
        w.virsh("vol-list", w.pool, "--details")
        w.kvmpool("vol-list", w.pool, "--details", check=False)
        yield w
    finally:
        lv.stop()


# ------------------------------------------------------------------ the daemon itself


def test_libvirtd_runs(walk: Walk) -> None:
    lv = walk.ok()
    out = walk.virsh("pool-list", "--all", "--name").stdout.split()
    assert out == [walk.pool], f"unexpected pools in the private libvirtd ({lv.uri}): {out}"


# ------------------------------------------------------------------ what the tools print


def test_print_xml_identical(walk: Walk) -> None:
    walk.ok()
    cases = [
        ["pool-define-as", "p1", "dir", "--target", "/srv/p1/images", "--print-xml"],
        ["pool-define-as", "p2", "netfs", "--source-host", "nfs.example", "--source-path",
         "/export", "--source-format", "nfs", "--target", "/mnt/p2", "--print-xml"],
        ["pool-define-as", "p3", "logical", "--source-name", "vg0", "--source-dev",
         "/dev/sdz", "--target", "/dev/vg0", "--print-xml"],
        ["vol-create-as", walk.pool, "n.qcow2", "20M", "--format", "qcow2", "--allocation",
         "1M", "--print-xml"],
        ["vol-create-as", walk.pool, "n.img", "10M", "--print-xml"],
    ]
    for args in cases:
        ours, theirs = walk.kvmpool(*args).stdout, walk.virsh(*args).stdout
        if args[0] == "vol-create-as" and "--format" not in args:
            # KNOWN, deliberate (src/kvmpool/cli/volumes.py): without --format kvmpool adds
            # an empty "<target/>" that virsh omits ("libvirt's schema requires it").
            # Only that line may differ.
            assert ours.replace("  <target/>\n", "", 1) == theirs, args
            continue
        assert ours == theirs, args


def _info(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in text.splitlines() if
                                              ":" in ln)}


def test_pool_info_bytes(walk: Walk) -> None:
    walk.ok()
    # libvirt's pool-info shows the totals of its last refresh (adjusted by its own vol
    # creates), kvmpool reads statvfs now: refresh libvirt right before each reading
    walk.virsh("pool-refresh", walk.pool)
    before = walk.virsh("pool-info", "--bytes", walk.pool).stdout
    ours = walk.kvmpool("pool-info", "--bytes", walk.pool).stdout
    walk.virsh("pool-refresh", walk.pool)
    after = walk.virsh("pool-info", "--bytes", walk.pool).stdout
    v1, k, v2 = _info(before), _info(ours), _info(after)
    assert list(k) == list(v1), (ours, before)
    for label in ("Name", "UUID", "State", "Persistent", "Autostart", "Capacity"):
        assert k[label] == v1[label] == v2[label], (label, ours, before)
    assert int(k["Capacity"]) == int(k["Allocation"]) + int(k["Available"])
    for label in ("Allocation", "Available"):
        lo = min(int(v1[label]), int(v2[label])) - POOL_TOLERANCE
        hi = max(int(v1[label]), int(v2[label])) + POOL_TOLERANCE
        assert lo <= int(k[label]) <= hi, (label, ours, before, after)
    # the exact text apart from those two numbers
    drop = re.compile(r"^(Allocation|Available):.*\n", re.M)
    assert drop.sub("", ours) == drop.sub("", before)


def test_pool_list(walk: Walk) -> None:
    walk.ok()
    for args in (["pool-list"], ["pool-list", "--all"], ["pool-list", "--all", "--name"],
                 ["pool-list", "--uuid", "--name"], ["pool-list", "--persistent"]):
        assert walk.kvmpool(*args).stdout == walk.virsh(*args).stdout, args


def test_vol_list(walk: Walk) -> None:
    walk.ok()
    assert walk.kvmpool("vol-list", walk.pool).stdout == walk.virsh("vol-list", walk.pool).stdout


def test_vol_list_details(walk: Walk) -> None:
    walk.ok()
    virsh = walk.virsh("vol-list", walk.pool, "--details").stdout
    ours = walk.kvmpool("vol-list", walk.pool, "--details", check=False)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == virsh


def test_all_volumes_listed(walk: Walk) -> None:
    walk.ok()
    names = walk.virsh("vol-list", walk.pool, "--details").stdout.splitlines()[2:]
    assert sorted(n.split()[0] for n in names if n.strip()) == sorted(ALL_VOLUMES)


@pytest.mark.parametrize("vol", ALL_VOLUMES)
def test_vol_info_bytes(walk: Walk, vol: str) -> None:
    walk.ok()
    for extra in ([], ["--physical"]):
        args = ["vol-info", vol, "--pool", walk.pool, "--bytes", *extra]
        ours = walk.kvmpool(*args, check=False)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == walk.virsh(*args).stdout, args


@pytest.mark.parametrize("vol", ALL_VOLUMES)
def test_vol_dumpxml(walk: Walk, vol: str) -> None:
    walk.ok()
    args = ["vol-dumpxml", vol, "--pool", walk.pool]
    ours = walk.kvmpool(*args, check=False)
    assert ours.returncode == 0, ours.stderr
    # nothing is masked: after a refresh libvirt reads the same files kvmpool reads
    assert ours.stdout == walk.virsh(*args).stdout


@pytest.mark.parametrize("vol", [f"v-{n}" for n, _, _ in VOLUMES])
def test_vol_dumpxml_before_refresh(walk: Walk, vol: str) -> None:
    """Until its next refresh libvirt shows the definition it created a volume from.

    The one legitimate difference, found on libvirt 9.0: for a qcow2 it has just created,
    libvirt has no <clusterSize> yet (it is probed from the header only by a refresh);
    kvmpool always reads the header. Every other line must be the same.
    """
    walk.ok()
    theirs = walk.before_refresh[vol]
    ours = walk.kvmpool("vol-dumpxml", vol, "--pool", walk.pool, check=False)
    assert ours.returncode == 0, ours.stderr
    cluster = "    <clusterSize unit='B'>65536</clusterSize>\n"
    if vol.endswith(".qcow2") and cluster not in theirs:
        assert ours.stdout.count(cluster) == 1
        assert ours.stdout.replace(cluster, "", 1) == theirs
    else:
        assert ours.stdout == theirs


def _creation_view(xml: str, prefix: str) -> str:
    """libvirt's dumpxml of a volume, minus what differs between two twins made apart."""
    xml = re.sub(r"\s*<timestamps>.*?</timestamps>", "", xml, flags=re.S)
    return xml.replace(f"/{prefix}", "/@").replace(f"<name>{prefix}", "<name>@")


@pytest.mark.parametrize("vol", [n for n, _, _ in VOLUMES])
def test_kvmpool_creates_what_libvirt_creates(walk: Walk, vol: str) -> None:
    """Same vol-create-as arguments, same file: libvirt judges both (sizes, format, compat)."""
    walk.ok()
    theirs = walk.virsh("vol-dumpxml", "v-" + vol, "--pool", walk.pool).stdout
    ours = walk.virsh("vol-dumpxml", "k-" + vol, "--pool", walk.pool).stdout
    if vol.endswith(".qcow2"):
        # The one deliberate difference (README): kvmpool makes qcow2 v3 (compat 1.1, qemu's
        # default) where libvirt 9.0 asks for the obsolete v2 (0.10). libvirt then reports
        # exactly these two extra lines for kvmpool's file, and nothing else differs.
        v3 = "    <compat>1.1</compat>\n"
        assert ours.count(v3) == 1 and "<features/>" in ours and v3 not in theirs
        ours = ours.replace(v3, "").replace("    <features/>\n", "")
    assert _creation_view(ours, "k-") == _creation_view(theirs, "v-")


# ------------------------------------------------------------------ pool XML round trip

POOL_XML = {
    "dir-perms": """<pool type='dir'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <target>
    <path>/srv/{name}//images/</path>
    <permissions>
      <mode>0755</mode>
      <owner>107</owner>
      <group>107</group>
      <label>system_u:object_r:virt_image_t:s0</label>
    </permissions>
  </target>
</pool>
""",
    "dir-no-uuid": """<pool type="dir"><name>{name}</name>
<target><path>/srv/{name}</path></target></pool>
""",
    "fs": """<pool type='fs'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <source>
    <device path='/dev/disk/by-id/{name}-part1'/>
    <format type='ext4'/>
  </source>
  <target>
    <path>/mnt/{name}</path>
  </target>
</pool>
""",
    "netfs": """<pool type='netfs'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <source>
    <host name='nfs.example.org' port='2049'/>
    <dir path='/export/{name}'/>
    <format type='nfs'/>
    <protocol ver='4'/>
  </source>
  <target>
    <path>/mnt/{name}</path>
  </target>
</pool>
""",
    "logical": """<pool type='logical'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <source>
    <device path='/dev/disk/by-id/{name}-pv'/>
    <name>vg{uuid8}</name>
    <format type='lvm2'/>
  </source>
  <target>
    <path>/dev/vg{uuid8}</path>
  </target>
</pool>
""",
    "disk": """<pool type='disk'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <source>
    <device path='/dev/disk/by-id/{name}-disk'/>
    <format type='gpt'/>
  </source>
  <target>
    <path>/dev</path>
  </target>
</pool>
""",
}


@pytest.mark.parametrize("variant", sorted(POOL_XML))
def test_pool_xml_round_trip(walk: Walk, variant: str, tmp_path: Path) -> None:
    """XML libvirtd accepts, kvmpool accepts, and both dump it identically (--inactive)."""
    lv = walk.ok()
    name = lv.pool_name(f"xml-{variant}")
    uid = str(uuidlib.uuid4())
    src = tmp_path / f"{variant}.xml"
    src.write_text(POOL_XML[variant].format(name=name, uuid=uid, uuid8=uid[:8]))
    solo = Walk(lv=lv, root=tmp_path / "root")  # its own kvmpool root: no source conflicts
    try:
        walk.virsh("pool-define", str(src))
        theirs = walk.virsh("pool-dumpxml", "--inactive", name).stdout
        # the file libvirt itself wrote (with its "AUTO-GENERATED" comment header)
        config = Path("/etc/libvirt/storage") / f"{name}.xml"
        solo.kvmpool("pool-define", str(config))
        assert solo.kvmpool("pool-dumpxml", "--inactive", name).stdout == theirs
        # and the user's file itself, when it names the uuid (else kvmpool makes its own)
        if "{uuid}" in POOL_XML[variant]:
            solo.kvmpool("pool-undefine", name)
            solo.kvmpool("pool-define", str(src))
            assert solo.kvmpool("pool-dumpxml", "--inactive", name).stdout == theirs
    finally:
        walk.virsh("pool-undefine", name, check=False)
