"""Names that are safe to turn into paths: a volume name can never leave its pool."""

from __future__ import annotations

from kvmpool.errors import InvalidArgument

MAX_NAME_BYTES = 255
TEMP_PREFIX = ".kvmpool-new-"


def check_volume_name(name: str) -> None:
    if not name:
        raise InvalidArgument("volume name must not be empty")
    if "/" in name:
        raise InvalidArgument(f"volume name '{name}' cannot contain '/'")
    if "\0" in name:
        raise InvalidArgument("volume name cannot contain a NUL character")
    if name in (".", ".."):
        raise InvalidArgument(f"volume name '{name}' is not allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(f"volume name {name!r} cannot contain control characters")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidArgument(f"volume name is longer than {MAX_NAME_BYTES} bytes")
    if name.startswith(TEMP_PREFIX):
        raise InvalidArgument(f"volume names starting with '{TEMP_PREFIX}' are reserved")


def check_pool_name(name: str) -> None:
    if not name:
        raise InvalidArgument("pool name must not be empty")
    if "/" in name:
        raise InvalidArgument(f"name {name} cannot contain '/'")
    if "\n" in name or "\0" in name:
        raise InvalidArgument("pool name cannot contain a newline or NUL")
    if name in (".", ".."):
        raise InvalidArgument(f"pool name '{name}' is not allowed")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidArgument(f"pool name is longer than {MAX_NAME_BYTES} bytes")
