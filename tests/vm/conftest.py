"""The vm test layer: tests that need a real kernel (device-mapper, ...) and scratch disks.

They run only inside the throwaway VM that ``tests/vm/run`` boots (its guest script sets
KVMPOOL_VM=1). Everything under tests/vm is marked ``vm``. On the host:

- a run over the whole tree (``pytest``, ``pytest tests``) deselects them, and says so in
  its summary: they are not skipped and never pass by accident;
- a run that names them (``pytest tests/vm/...``) fails each of them with a message
  pointing to ``tests/vm/run``, so that asking for a VM test never looks green.

``pytest tests/unit`` and the other layers never load this file.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmpool.host.lvm import Lvm
from kvmpool.host.run import Runner

HERE = Path(__file__).resolve().parent
IN_VM = os.environ.get("KVMPOOL_VM") == "1"
# tests/vm/run collects on the host before booting, to fail fast on a broken selection.
PREFLIGHT = os.environ.get("KVMPOOL_VM_PREFLIGHT") == "1"

_deselected: list[str] = []


def _under_vm_dir(path: Path) -> bool:
    return path == HERE or HERE in path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _under_vm_dir(Path(item.path)):
            item.add_marker(pytest.mark.vm)
    if IN_VM or PREFLIGHT:
        return
    named = any(
        _under_vm_dir(Path(config.invocation_params.dir, a.split("::")[0]).resolve())
        for a in config.args
    )
    if named:
        return  # they fail in pytest_runtest_setup, with the command to use
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if item.get_closest_marker("vm") else keep).append(item)
    if drop:
        _deselected.extend(i.nodeid for i in drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("vm") and not IN_VM:
        pytest.fail(
            f"this test runs only inside the test VM; run it with: tests/vm/run {item.nodeid}",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_line(
            f"{len(_deselected)} vm tests deselected: they run only in a VM, with tests/vm/run"
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vm_disks() -> list[str]:
    """The scratch disks tests/vm/run attached, as /dev/vdX paths, in order."""
    serials = os.environ.get("KVMPOOL_VM_DISKS", "").split()
    paths = []
    for serial in serials:
        link = Path("/dev/disk/by-id", f"virtio-{serial}")
        if not link.exists():
            pytest.fail(f"scratch disk {serial} is missing ({link})", pytrace=False)
        paths.append(str(link.resolve()))
    if not paths:
        pytest.fail("no scratch disks (KVMPOOL_VM_DISKS is empty)", pytrace=False)
    return paths


@pytest.fixture
def lvm() -> Lvm:
    # LVM_SYSTEM_DIR (set by guest.sh) already turns udev synchronisation off.
    return Lvm(Runner(), timeout=120.0)


@pytest.fixture
def disks(vm_disks: list[str], lvm: Lvm) -> Iterator[list[str]]:
    """The scratch disks, left blank after the test whatever it did to them."""
    yield vm_disks
    ours = [pv for pv in lvm.pvs() if pv.name in vm_disks]
    for vg in sorted({pv.vg for pv in ours if pv.vg}):
        lvm.vgremove(vg)
    if ours:
        lvm.pvremove([pv.name for pv in ours], force=True)
    for disk in vm_disks:
        subprocess.run(["wipefs", "-a", "-q", disk], check=True, timeout=60)


MiB = 1 << 20


class BlockIO:
    """Data helpers for tests: reproducible patterns, dd with direct I/O (no page cache,
    which would hide what device-mapper did underneath, e.g. after a merge)."""

    @staticmethod
    def pattern(size: int, seed: int) -> bytes:
        """``size`` reproducible pseudo-random bytes."""
        return random.Random(seed).randbytes(size)

    @staticmethod
    def write(device: str, data: bytes, *, offset_mib: int = 0) -> None:
        """Write ``data`` (whole MiBs) to ``device`` with dd."""
        assert len(data) % MiB == 0
        subprocess.run(
            ["dd", f"of={device}", "bs=1M", f"seek={offset_mib}", "oflag=direct", "conv=fsync",
             "status=none"],
            input=data, check=True, timeout=120,
        )  # fmt: skip

    @staticmethod
    def read(device: str, size_mib: int, *, offset_mib: int = 0) -> bytes:
        """Read ``size_mib`` MiB from ``device`` with dd."""
        out = subprocess.run(
            ["dd", f"if={device}", "bs=1M", f"skip={offset_mib}", f"count={size_mib}",
             "iflag=direct", "status=none"],
            capture_output=True, check=True, timeout=120,
        ).stdout  # fmt: skip
        assert len(out) == size_mib * MiB, f"short read from {device}: {len(out)} bytes"
        return out

    @staticmethod
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture
def blockio() -> BlockIO:
    return BlockIO()
