"""Property tests: probe() never raises on hostile bytes and always returns sane values."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmpool.formats import KNOWN_FORMATS, ImageInfo, probe

from .test_formats import (
    bochs,
    cloop,
    cow,
    descriptor,
    koly,
    luks,
    parallels,
    qcow1,
    qcow2,
    qed,
    vdi,
    vhdx,
    vmdk4,
    vpc_dynamic,
    vpc_footer,
)

MiB = 1 << 20
FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # the scratch dir is reused on purpose

SEEDS = [
    qcow2(MiB, backing=b"base", backing_fmt=b"qcow2", incompat=4, data_file=b"d"),
    qcow2(MiB, version=2, crypt=2),
    qcow1(MiB, b"base"),
    qed(MiB, backing=b"base"),
    vmdk4(2048, descriptor=descriptor("monolithicSparse", [], parent="p.vmdk")),
    descriptor("twoGbMaxExtentFlat", ['RW 4 FLAT "a" 0', 'RW 8 SPARSE "b"']),
    vpc_dynamic(vpc_footer(MiB, 20, 16, 63)),
    vhdx(MiB),
    vdi(MiB),
    parallels(64),
    luks(8) + bytes(4096),
    bochs(MiB),
    cloop(512, 4),
    cow(MiB, b"base"),
    bytes(1024) + koly(8),
]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def check(path: Path, data: bytes, fmt: str | None = None) -> ImageInfo:
    path.write_bytes(data)
    info = probe(str(path), format=fmt)
    assert isinstance(info, ImageInfo)
    assert info.capacity >= 0
    assert info.corrupt is None or "\n" not in info.corrupt
    if info.backing is not None:
        assert info.backing.path is None or os.path.isabs(info.backing.path)
    assert all(os.path.isabs(p) for p in info.extra_files)
    return info


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_raise(scratch: Path, data: bytes) -> None:
    check(scratch / "random", data)


@settings(max_examples=600, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=24),
    cut=st.one_of(st.none(), st.integers(0, 300_000)),
)
def test_mutated_headers_never_raise(
    scratch: Path, seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for off, value in edits:
        if off < len(data):
            data[off] = value
    if cut is not None:
        del data[cut:]
    check(scratch / "mutated", bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.binary(max_size=2048), fmt=st.sampled_from(sorted(KNOWN_FORMATS)))
def test_forced_formats_never_raise(scratch: Path, data: bytes, fmt: str) -> None:
    info = check(scratch / "forced", data, fmt)
    assert info.format == fmt


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    text=st.text(
        alphabet=st.sampled_from(list('RWFLATSPARSE "=\n\t #0123456789xyz-.')), max_size=2000
    )
)
def test_descriptor_text_never_raises(scratch: Path, text: str) -> None:
    check(scratch / "desc", b"# Disk DescriptorFile\nversion=1\n" + text.encode())


def test_hostile_descriptor_is_fast(scratch: Path) -> None:
    """Whitespace-heavy text must not make the descriptor regexes go quadratic."""
    data = b"version=1\n" + b"\n" * 500_000 + b" " * 400_000
    start = time.monotonic()
    check(scratch / "slow", data)
    assert time.monotonic() - start < 2.0
