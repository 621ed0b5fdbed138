"""fs pools on vfat: this machine's kernel cannot mount vfat, the VM's stock kernel can."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Kvmpool

pytestmark = pytest.mark.vm


def test_vfat_fs_pool_lifecycle(kvmpool: Kvmpool, disks: list[str], tmp_path: Path) -> None:
    dev = disks[2]
    target = tmp_path / "vfat"
    kvmpool("pool-define-as", "fat", "fs", "--source-dev", dev, "--source-format", "vfat",
            "--target", str(target))
    kvmpool("pool-build", "fat", "--overwrite")
    kvmpool("pool-start", "fat")
    mounts = Path("/proc/self/mounts").read_text()
    assert f"{dev} {target} vfat" in mounts
    kvmpool("vol-create-as", "fat", "a.img", "4M")
    vols = json.loads(kvmpool("vol-list", "fat", "--json").out)
    assert [(v["name"], v["capacity"]) for v in vols] == [("a.img", 4 << 20)]
    kvmpool("vol-delete", "a.img", "--pool", "fat")
    kvmpool("pool-destroy", "fat")
    assert str(target) not in Path("/proc/self/mounts").read_text()
    kvmpool("pool-undefine", "fat")
    subprocess.run(["wipefs", "-a", "-q", dev], check=True, timeout=60)
