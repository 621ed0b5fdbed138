"""virsh's text layout, checked against output captured from virsh 9.0."""

import click
import pytest

from kvmpool.cli.output import info_lines, table
from kvmpool.cli.virsh import VirshCommand


def test_pool_list_table_matches_virsh() -> None:
    expected = (
        " Name        State    Autostart\n"
        "---------------------------------\n"
        " bench       active   no\n"
        " lvtest-p1   active   yes\n"
    )
    rows = [["bench", "active", "no"], ["lvtest-p1", "active", "yes"]]
    assert table(["Name", "State", "Autostart"], rows) == expected


def test_empty_vol_list_matches_virsh() -> None:
    assert table(["Name", "Path"], []) == " Name   Path\n--------------\n"


def test_details_table_matches_virsh() -> None:
    expected = (
        " Name         Path                               Type   Capacity    Allocation\n"
        "--------------------------------------------------------------------------------\n"
        " adir         /srv/lvtest-p1/images/adir         dir    0.00 B      0.00 B\n"
        " sparse.img   /srv/lvtest-p1/images/sparse.img   file   10.00 MiB   0.00 B\n"
    )
    rows = [
        ["adir", "/srv/lvtest-p1/images/adir", "dir", "0.00 B", "0.00 B"],
        ["sparse.img", "/srv/lvtest-p1/images/sparse.img", "file", "10.00 MiB", "0.00 B"],
    ]
    assert table(["Name", "Path", "Type", "Capacity", "Allocation"], rows) == expected


def test_quiet_table_has_no_header() -> None:
    assert table(["Name"], [["a"]], quiet=True) == " a\n"


def test_control_characters_are_escaped_and_counted() -> None:
    out = table(["Name", "X"], [["a\tb", "1"]])
    assert " a\\x09b   1\n" in out


def test_info_lines_match_virsh() -> None:
    assert info_lines([("Name", "raw1.img"), ("Capacity", "10485760 bytes")]) == (
        "Name:           raw1.img\nCapacity:       10485760 bytes\n"
    )


def _cmd() -> VirshCommand:
    @click.command(cls=VirshCommand, positionals=("vol", "pool"))
    @click.option("--vol", required=True)
    @click.option("--pool")
    @click.option("--bytes", "as_bytes", is_flag=True)
    def cmd(vol: str, pool: str | None, as_bytes: bool) -> None:
        click.echo(f"{vol}|{pool}|{as_bytes}")

    return cmd  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("args", "rewritten"),
    [
        (["v", "p"], ["--vol=v", "--pool=p"]),
        (["v", "--pool", "p"], ["--vol=v", "--pool=p"]),
        (["--pool", "p", "v"], ["--pool=p", "--vol=v"]),
        (["--vol", "v", "--bytes"], ["--vol=v", "--bytes"]),
        (["-5M"], ["--vol=-5M"]),
        (["-"], ["--vol=-"]),
        (["--", "--odd"], ["--vol=--odd"]),
    ],
)
def test_virsh_positionals(args: list[str], rewritten: list[str]) -> None:
    assert _cmd().rewrite(args) == rewritten


def test_too_many_positionals_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError, match="unexpected data 'x'"):
        _cmd().rewrite(["v", "p", "x"])
