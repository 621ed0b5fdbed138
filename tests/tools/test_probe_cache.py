"""The probe cache never serves a stale answer: any change to a file makes it probe again."""

from __future__ import annotations

import json
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


def test_identical_results_are_stored_once_and_bad_indexes_are_not_trusted(
        tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    _img(pool / "base.qcow2", "qcow2", "16M")
    for i in range(20):
        (pool / f"copy{i}.qcow2").write_bytes((pool / "base.qcow2").read_bytes())
    _img(pool / "plain.img", "raw", "8M")
    cache_file = tmp_path / "cache.json"
    first = files.scan(str(pool), details=True, cache=ProbeCache(str(cache_file)))
    data = json.loads(cache_file.read_text())
    assert len(data["files"]) == 22 and len(data["infos"]) == 2
    cached = files.scan(str(pool), details=True, cache=ProbeCache(str(cache_file)))
    assert sorted(first, key=lambda v: v.name) == sorted(cached, key=lambda v: v.name)
    # an index that points nowhere: that file is probed again, the others still served
    data["files"]["plain.img"][4] = 99
    cache_file.write_text(json.dumps(data))
    cache = ProbeCache(str(cache_file))
    assert cache.get("plain.img", os.stat(pool / "plain.img")) is None
    assert cache.get("copy3.qcow2", os.stat(pool / "copy3.qcow2")) is not None
    again = {v.name: v for v in files.scan(str(pool), details=True, cache=cache)}
    assert again["plain.img"].target.format == "raw" and again["plain.img"].capacity == 8 << 20
