"""libvirt's scaled sizes: ``10G`` = 10 GiB, ``10GB`` = 10**10, ``b``/``bytes`` = 1.

Parsing follows libvirt's ``virScaleInteger``; printing follows virsh's ``vshPrettyCapacity``.
"""

from __future__ import annotations

import re

from kvmpool.errors import InvalidArgument

_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_NUMBER = re.compile(r"\s*([0-9]+)(.*)\Z", re.DOTALL)
ULLONG_MAX = 2**64 - 1


def scale(value: int, unit: str | None, *, default: int = 1, limit: int = ULLONG_MAX) -> int:
    """Scale ``value`` by libvirt's ``unit`` suffix (case-insensitive)."""
    if not unit:
        factor = default
    elif unit.lower() in ("b", "byte", "bytes"):
        factor = 1
    else:
        rest = unit[1:]
        if not rest or rest.lower() == "ib":
            base = 1024
        elif rest.lower() == "b":
            base = 1000
        else:
            raise InvalidArgument(f"unknown suffix '{unit}'")
        power = _POWERS.get(unit[0].lower())
        if power is None:
            raise InvalidArgument(f"unknown suffix '{unit}'")
        factor = base**power
    if value > limit // factor:
        raise InvalidArgument("value too large")
    return value * factor


def parse_size(text: str, *, default: int = 1) -> int:
    """Parse a size as virsh does for vol-create-as/vol-resize: ``10G``, ``512M``, ``100``."""
    m = _NUMBER.match(text)
    if m is None:
        raise InvalidArgument(f"Malformed size {text}")
    try:
        return scale(int(m.group(1)), m.group(2), default=default)
    except InvalidArgument as err:
        raise InvalidArgument(f"Malformed size {text}: {err.message}") from None


_PRETTY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def pretty(value: int) -> str:
    """virsh's human size: ``"%.2lf %s"`` with the first unit where the value is < 1024."""
    for power, unit in enumerate(_PRETTY):
        if value < 1024 ** (power + 1) or unit == "EiB":
            return f"{value / 1024**power:.2f} {unit}"
    raise AssertionError("unreachable")
