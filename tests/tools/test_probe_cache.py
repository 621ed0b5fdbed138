"""The probe cache never serves a stale answer: any change to a file makes it probe again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kvmpool.backends import files
from kvmpool.backends.probecache import ProbeCache

pytestmark = pytest.mark.tools


def _img(path: Path, fmt: str, size: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)


def test_cache_is_used_and_invalidated(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    _img(pool / "a.qcow2", "qcow2", "16M")
    _img(pool / "b.img", "raw", "8M")
    cache_file = tmp_path / "cache.json"
    first = {v.name: v for v in files.scan(str(pool), details=True,
                                           cache=ProbeCache(str(cache_file)))}
    assert cache_file.exists()
    cache = ProbeCache(str(cache_file))
    st = os.stat(pool / "a.qcow2")
    hit = cache.get("a.qcow2", st)
    assert hit is not None and hit.format == "qcow2" and hit.capacity == 16 << 20
    # Rewrite the file behind the cache's back (new size, other format): probed again.
    (pool / "a.qcow2").unlink()
    _img(pool / "a.qcow2", "raw", "4M")
    again = {v.name: v for v in files.scan(str(pool), details=True,
                                           cache=ProbeCache(str(cache_file)))}
    assert again["a.qcow2"].target.format == "raw" and again["a.qcow2"].capacity == 4 << 20
    b1, b2 = first["b.img"], again["b.img"]
    assert (b2.target.format, b2.capacity, b2.allocation) == (
        b1.target.format, b1.capacity, b1.allocation)
    # A corrupt or foreign cache file is ignored, never trusted.
    cache_file.write_text("{not json")
    assert len(files.scan(str(pool), details=True, cache=ProbeCache(str(cache_file)))) == 2


def test_vmdk_extents_are_not_volumes(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o",
                    "subformat=twoGbMaxExtentSparse", str(pool / "d.vmdk"), "4G"], check=True)
    assert len(os.listdir(pool)) > 1  # the descriptor and its extent files
    vols = files.scan(str(pool), details=True)
    assert [v.name for v in vols] == ["d.vmdk"]
    everything = sum(p.stat().st_blocks * 512 for p in pool.iterdir())
    assert vols[0].allocation == everything
