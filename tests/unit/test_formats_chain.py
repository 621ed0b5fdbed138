"""backing_chain: loops, missing links, depth bound, and never guessing a backing format."""

from __future__ import annotations

from pathlib import Path

from kvmpool.formats import LinkState, backing_chain

from .test_formats import MiB, cow, qcow2, qed, write


def overlay(path: Path, backing: str, fmt: str | None = "qcow2", size: int = MiB) -> str:
    return write(
        path, qcow2(size, backing=backing.encode(), backing_fmt=fmt.encode() if fmt else None)
    )


def states(chain: tuple) -> list[LinkState]:
    return [link.state for link in chain]


def test_simple_chain(tmp_path: Path) -> None:
    write(tmp_path / "base.raw", b"x" * 4096)
    overlay(tmp_path / "mid.qcow2", "base.raw", "raw")
    top = overlay(tmp_path / "top.qcow2", "mid.qcow2")
    chain = backing_chain(top)
    assert states(chain) == [LinkState.OK] * 3
    assert [link.format for link in chain] == ["qcow2", "qcow2", "raw"]
    assert [link.depth for link in chain] == [0, 1, 2]
    assert chain[2].info is not None and chain[2].info.capacity == 4096
    assert chain[0].ref is None and chain[1].ref is not None and chain[1].ref.raw == "mid.qcow2"


def test_raw_backing_is_not_parsed_even_if_it_holds_a_header(tmp_path: Path) -> None:
    # A guest wrote a qcow2 header naming /etc/shadow into its raw disk.
    write(tmp_path / "guest.raw", qcow2(MiB, backing=b"/etc/shadow", backing_fmt=b"raw"))
    top = overlay(tmp_path / "top.qcow2", "guest.raw", "raw")
    chain = backing_chain(top)
    assert states(chain) == [LinkState.OK, LinkState.OK]
    assert chain[1].info is not None and chain[1].info.backing is None


def test_unrecorded_format_is_not_probed(tmp_path: Path) -> None:
    write(tmp_path / "base.img", qcow2(MiB, backing=b"/etc/shadow", backing_fmt=b"raw"))
    top = overlay(tmp_path / "top.qcow2", "base.img", None)
    chain = backing_chain(top)
    assert states(chain) == [LinkState.OK, LinkState.FORMAT_UNKNOWN]
    assert chain[1].info is None and chain[1].format is None
    # same for formats that cannot record one: qed without the raw flag, cow
    write(tmp_path / "q.qed", qed(MiB, backing=b"base.img"))
    assert states(backing_chain(str(tmp_path / "q.qed")))[-1] is LinkState.FORMAT_UNKNOWN
    write(tmp_path / "c.cow", cow(MiB, b"base.img"))
    assert states(backing_chain(str(tmp_path / "c.cow")))[-1] is LinkState.FORMAT_UNKNOWN


def test_missing_links(tmp_path: Path) -> None:
    top = overlay(tmp_path / "top.qcow2", "gone.qcow2")
    chain = backing_chain(top)
    assert states(chain) == [LinkState.OK, LinkState.MISSING]
    assert chain[1].path == str(tmp_path / "gone.qcow2")
    unknown = overlay(tmp_path / "u.qcow2", "gone.qcow2", None)
    assert states(backing_chain(unknown)) == [LinkState.OK, LinkState.MISSING]


def test_loops(tmp_path: Path) -> None:
    overlay(tmp_path / "a.qcow2", "b.qcow2")
    b = overlay(tmp_path / "b.qcow2", "a.qcow2")
    chain = backing_chain(b)
    assert states(chain) == [LinkState.OK, LinkState.OK, LinkState.LOOP]
    me = overlay(tmp_path / "me.qcow2", "me.qcow2")
    assert states(backing_chain(me)) == [LinkState.OK, LinkState.LOOP]
    (tmp_path / "link.qcow2").symlink_to(tmp_path / "viasym.qcow2")
    via = overlay(tmp_path / "viasym.qcow2", "link.qcow2")
    assert states(backing_chain(via)) == [LinkState.OK, LinkState.LOOP]


def test_depth_bound(tmp_path: Path) -> None:
    write(tmp_path / "l0", b"")
    overlay(tmp_path / "l1", "l0", "raw")
    for i in range(2, 12):
        overlay(tmp_path / f"l{i}", f"l{i - 1}")
    chain = backing_chain(str(tmp_path / "l11"), max_depth=4)
    assert states(chain) == [LinkState.OK] * 5 + [LinkState.TOO_DEEP]
    assert chain[-1].info is None and chain[-1].depth == 5
    assert len(backing_chain(str(tmp_path / "l11"))) == 12


def test_network_and_unreadable(tmp_path: Path) -> None:
    top = overlay(tmp_path / "n.qcow2", "nbd://example.org/disk", "raw")
    chain = backing_chain(top)
    assert states(chain) == [LinkState.OK, LinkState.NETWORK]
    assert chain[1].path is None and chain[1].format == "raw"
    (tmp_path / "dir.qcow2").mkdir()
    d = overlay(tmp_path / "d.qcow2", "dir.qcow2")
    chain = backing_chain(d)
    assert chain[1].state is LinkState.OK and chain[1].info is not None
    assert chain[1].info.corrupt is not None  # a directory is not read


def test_top_missing_and_known_top_format(tmp_path: Path) -> None:
    assert states(backing_chain(str(tmp_path / "nothing"))) == [LinkState.MISSING]
    img = write(tmp_path / "img", qcow2(MiB, backing=b"x", backing_fmt=b"raw"))
    chain = backing_chain(img, format="raw")
    assert states(chain) == [LinkState.OK] and chain[0].format == "raw"
