"""Shared fixtures: a kvmpool CLI run in-process against a private root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmpool.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


class Kvmpool:
    """Runs ``kvmpool --root ROOT ARGS...`` in this process, capturing its output."""

    def __init__(self, root: Path, capfd: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capfd = capfd

    def __call__(self, *args: str, ok: bool = True) -> Result:
        self.capfd.readouterr()
        code = main(["--root", str(self.root), *args])
        out, err = self.capfd.readouterr()
        result = Result(code, out, err)
        if ok and code != 0:
            raise AssertionError(f"kvmpool {' '.join(args)} failed ({code}): {err}")
        if not ok and code == 0:
            raise AssertionError(f"kvmpool {' '.join(args)} should have failed: {out}")
        return result


@pytest.fixture
def kvmpool(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Kvmpool]:
    old = os.environ.pop("KVMPOOL_ROOT", None)
    yield Kvmpool(tmp_path / "root", capfd)
    if old is not None:
        os.environ["KVMPOOL_ROOT"] = old


def tree(path: Path) -> dict[str, bytes | None]:
    """Every file under ``path`` with its content (None for directories): for "nothing changed"."""
    found: dict[str, bytes | None] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            found[rel] = os.readlink(p).encode()
        elif p.is_dir():
            found[rel] = None
        else:
            found[rel] = p.read_bytes()
    return found
