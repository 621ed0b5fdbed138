"""The progress line: bytes, percentage, rate and ETA, only on a terminal."""

import io

import pytest

from kvmpool.cli import progress
from kvmpool.cli.progress import Meter


def test_meter_draws_bytes_percent_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 2.0, 2.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    m = Meter("cloning a", 4 << 20, stream=out)
    m(1 << 20)
    m(1 << 20)
    m.close()
    text = out.getvalue()
    assert "\rcloning a: 1.00 MiB of 4.00 MiB ( 25%), 1.00 MiB/s, ETA 0:03" in text
    assert "2.00 MiB of 4.00 MiB ( 50%)" in text and text.endswith("\n")


def test_no_meter_in_scripts_or_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert progress.meter("x", 10, quiet=False) is None
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.meter("x", 10, quiet=True) is None
    assert isinstance(progress.meter("x", 10, quiet=False), Meter)
