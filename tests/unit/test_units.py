import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmpool.errors import InvalidArgument
from kvmpool.units import parse_size, pretty, scale


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100", 100),
        ("10G", 10 * 2**30),
        ("10g", 10 * 2**30),
        ("10GiB", 10 * 2**30),
        ("10GB", 10 * 10**9),
        ("512M", 512 * 2**20),
        ("1k", 1024),
        ("1KB", 1000),
        ("7b", 7),
        ("7bytes", 7),
        ("1T", 2**40),
        ("1E", 2**60),
    ],
)
def test_parse_size_as_libvirt(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["1.5G", "G", "", "10Q", "10GX", "-5M", "20EiB"])
def test_malformed_sizes_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Malformed size"):
        parse_size(text)


def test_unknown_suffix_message_matches_virsh() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown suffix '\.5G'"):
        parse_size("1.5G")


def test_scale_overflow() -> None:
    with pytest.raises(InvalidArgument):
        scale(2**60, "K")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0.00 B"),
        (1023, "1023.00 B"),
        (4096, "4.00 KiB"),
        (10485760, "10.00 MiB"),
        (200704, "196.00 KiB"),
        (21237760, "20.25 MiB"),
        (270553174016, "251.97 GiB"),
        (2**60, "1.00 EiB"),
    ],
)
def test_pretty_matches_virsh(value: int, text: str) -> None:
    assert pretty(value) == text


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_pretty_always_two_decimals(value: int) -> None:
    number, unit = pretty(value).split(" ")
    assert unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    assert len(number.split(".")[1]) == 2
