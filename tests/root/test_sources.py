"""find-storage-pool-sources logical on real PVs and VGs (loop devices), beside virsh's answer.

pvcreate and vgcreate work on this kernel (no device-mapper needed: nothing is activated);
lvcreate would not, and discovery needs none.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Kvmpool
from tests.libvirtd import Libvirtd, LibvirtdError
from tests.root.loops import loopdev, needs_root, one_line_error, sh

pytestmark = [pytest.mark.root, needs_root]
__all__ = ["loopdev"]  # the fixture, imported for pytest


def _block(out: str, vg: str) -> str:
    """The ``<source>`` element (as printed) that names ``vg``."""
    blocks = out.split("  <source>\n")[1:]
    found = [b for b in blocks if f"<name>{vg}</name>" in b]
    assert len(found) == 1, out
    return "  <source>\n" + found[0].split("  </source>\n")[0] + "  </source>\n"


@pytest.fixture
def vgs(loopdev: Callable[[int], str]) -> Iterator[tuple[str, list[str], str]]:
    """A VG on two loop devices and a lone PV: (vg, its devices, the lone PV)."""
    vg = "kvmpool-src-" + secrets.token_hex(3)
    devs = [loopdev(16), loopdev(16), loopdev(16)]
    sh("pvcreate", "-q", *devs)
    sh("vgcreate", "-q", vg, devs[0], devs[1])
    try:
        yield vg, devs[:2], devs[2]
    finally:
        sh("vgremove", "-q", "-f", vg, check=False)
        sh("pvremove", "-q", "-f", *devs, check=False)


def test_logical_sources(kvmpool: Kvmpool, vgs: tuple[str, list[str], str]) -> None:
    vg, devs, lone = vgs
    out = kvmpool("find-storage-pool-sources", "logical").out
    assert out.startswith("<sources>\n") and out.endswith("</sources>\n\n")
    assert _block(out, vg) == (
        f"  <source>\n    <device path='{devs[0]}'/>\n    <device path='{devs[1]}'/>\n"
        f"    <name>{vg}</name>\n    <format type='lvm2'/>\n  </source>\n")
    assert f"'{lone}'" not in out  # a PV in no VG is no pool source
    assert kvmpool("find-storage-pool-sources-as", "logical").out == out
    found = json.loads(kvmpool("find-storage-pool-sources", "logical", "--json").out)
    assert {"devices": [{"path": devs[0]}, {"path": devs[1]}], "name": vg,
            "format": "lvm2"} in found
    one_line_error(kvmpool("find-storage-pool-sources", "dir", ok=False).err)


def test_logical_sources_as_virsh_prints_them(kvmpool: Kvmpool,
                                              vgs: tuple[str, list[str], str]) -> None:
    vg, _, _ = vgs
    daemon = Libvirtd(lock_timeout=120)
    try:
        daemon.start()
    except LibvirtdError as err:
        pytest.skip(f"no libvirtd to compare with: {err}")
    try:
        theirs = daemon.virsh("find-storage-pool-sources", "logical").stdout
    finally:
        daemon.stop()
    ours = kvmpool("find-storage-pool-sources", "logical").out
    assert _block(ours, vg) == _block(theirs, vg)
    assert ours.endswith("</sources>\n\n") and theirs.endswith("</sources>\n\n")
