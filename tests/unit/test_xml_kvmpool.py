"""kvmpool's own pool XML namespace: <kvmpool:thinpool> and <kvmpool:thin>, and their schema.

A pool without extensions stays what libvirt writes (the corpus tests in test_xml_corpus.py
prove it byte for byte); a pool with them round-trips byte for byte too and validates
against libvirt's schema (outside our namespace) plus ours (inside it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from kvmpool.errors import InvalidArgument, XmlError
from kvmpool.model import PoolDef, PoolSource, PoolTarget, PoolType, ThinUsage
from kvmpool.xml import format_pool, parse_pool, validate
from kvmpool.xml.ext import KVMPOOL_NS, check_lv_name, without_namespace
from kvmpool.xml.rng import KVMPOOL_SCHEMA, kvmpool_schema

DATA = Path(__file__).resolve().parent.parent / "data" / "libvirt-xml"
NS = "http://kvmpool.org/schemas/storagepool/1.0"

THIN_IN = """<pool type='logical' xmlns:kvmpool='http://kvmpool.org/schemas/storagepool/1.0'>
  <name>guests</name>
  <uuid>8a7b2c4d-1e2f-4a5b-9c6d-7e8f9a0b1c2d</uuid>
  <source>
    <device path='/dev/vdb'/>
    <name>vg_guests</name>
  </source>
  <target>
    <path>/dev/vg_guests</path>
  </target>
  <kvmpool:thinpool name='thinpool0'/>
</pool>
"""

THIN_OUT = """<pool type='logical' xmlns:kvmpool='http://kvmpool.org/schemas/storagepool/1.0'>
  <name>guests</name>
  <uuid>8a7b2c4d-1e2f-4a5b-9c6d-7e8f9a0b1c2d</uuid>
  <capacity unit='bytes'>0</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='bytes'>0</available>
  <source>
    <device path='/dev/vdb'/>
    <name>vg_guests</name>
    <format type='lvm2'/>
  </source>
  <target>
    <path>/dev/vg_guests</path>
  </target>
  <kvmpool:thinpool name='thinpool0'/>
</pool>
"""

THIN_RUNNING = """<pool type='logical' xmlns:kvmpool='http://kvmpool.org/schemas/storagepool/1.0'>
  <name>guests</name>
  <uuid>8a7b2c4d-1e2f-4a5b-9c6d-7e8f9a0b1c2d</uuid>
  <capacity unit='bytes'>21470642176</capacity>
  <allocation unit='bytes'>10737418240</allocation>
  <available unit='bytes'>10733223936</available>
  <source>
    <device path='/dev/vdb'/>
    <name>vg_guests</name>
    <format type='lvm2'/>
  </source>
  <target>
    <path>/dev/vg_guests</path>
  </target>
  <kvmpool:thinpool name='thinpool0'/>
  <kvmpool:thin provisioned='32212254720' data_used='1342177280' data_percent='12.50' \
metadata_percent='3.10'/>
</pool>
"""

USAGE = ThinUsage(
    provisioned=32212254720, data_used=1342177280, data_percent=12.5, metadata_percent=3.1
)

TP = "  <kvmpool:thinpool name='thinpool0'/>\n"
FMT = "    <format type='lvm2'/>\n"


def thin_pool(name: str = "thinpool0") -> str:
    return THIN_OUT.replace("name='thinpool0'", f"name='{name}'")


def libvirt_pool(name: str) -> PoolDef:
    return parse_pool((DATA / "storagepoolxml2xmlin" / f"{name}.xml").read_bytes())


# ---------------------------------------------------------------- model and round trip


def test_namespace_uri() -> None:
    assert KVMPOOL_NS == NS


def test_thinpool_round_trip_is_byte_exact() -> None:
    pool = parse_pool(THIN_IN)
    assert pool.type is PoolType.LOGICAL
    assert pool.thin_pool == "thinpool0"
    assert pool.thin is None
    assert pool.source.name == "vg_guests"
    assert format_pool(pool) == THIN_OUT
    assert parse_pool(THIN_OUT) == pool
    assert format_pool(parse_pool(THIN_OUT)) == THIN_OUT


def test_thinpool_from_code() -> None:
    pool = PoolDef(
        type=PoolType.LOGICAL,
        name="guests",
        uuid="8a7b2c4d-1e2f-4a5b-9c6d-7e8f9a0b1c2d",
        source=PoolSource(devices=(parse_pool(THIN_IN).source.devices), name="vg_guests"),
        target=PoolTarget(path="/dev/vg_guests"),
        thin_pool="thinpool0",
    )
    assert format_pool(pool) == THIN_OUT


def test_namespace_is_found_by_uri_not_prefix() -> None:
    doc = THIN_IN.replace("xmlns:kvmpool=", "xmlns:k=").replace("<kvmpool:", "<k:")
    assert format_pool(parse_pool(doc)) == THIN_OUT


def test_thin_facts_are_printed_not_parsed() -> None:
    pool = replace(
        parse_pool(THIN_IN),
        capacity=21470642176,
        allocation=10737418240,
        available=10733223936,
        thin=USAGE,
    )
    assert format_pool(pool) == THIN_RUNNING
    validate(THIN_RUNNING, "pool")
    again = parse_pool(THIN_RUNNING)
    assert again.thin is None
    assert again == parse_pool(THIN_IN)  # like <capacity>: runtime facts are never read
    assert format_pool(again) == THIN_OUT


def test_thin_facts_are_ignored_even_when_garbage() -> None:
    doc = THIN_OUT.replace(
        "  <kvmpool:thinpool name='thinpool0'/>\n",
        "  <kvmpool:thinpool name='thinpool0'/>\n  <kvmpool:thin data_percent='lots'/>\n",
    )
    assert parse_pool(doc).thin is None


@pytest.mark.parametrize(("value", "text"), [(0.0, "0.00"), (100.0, "100.00"), (3.14159, "3.14")])
def test_thin_percent_has_two_decimals(value: float, text: str) -> None:
    usage = ThinUsage(provisioned=0, data_used=0, data_percent=value, metadata_percent=value)
    out = format_pool(replace(parse_pool(THIN_IN), thin=usage))
    assert f"data_percent='{text}' metadata_percent='{text}'" in out
    validate(out, "pool")


@pytest.mark.parametrize(
    "usage",
    [
        ThinUsage(provisioned=-1, data_used=0, data_percent=0.0, metadata_percent=0.0),
        ThinUsage(provisioned=0, data_used=0, data_percent=float("nan"), metadata_percent=0.0),
        ThinUsage(provisioned=0, data_used=0, data_percent=0.0, metadata_percent=100.5),
    ],
)
def test_impossible_thin_facts_are_not_printed(usage: ThinUsage) -> None:
    with pytest.raises(XmlError, match="invalid thin pool"):
        format_pool(replace(parse_pool(THIN_IN), thin=usage))


def test_thin_facts_need_a_thin_pool() -> None:
    pool = replace(libvirt_pool("pool-logical"), thin=USAGE)
    with pytest.raises(XmlError, match="not bound to a thin pool"):
        format_pool(pool)


def test_model_fields() -> None:
    pool = libvirt_pool("pool-logical")
    assert pool.thin_pool is None
    assert pool.thin is None
    with pytest.raises(AttributeError):
        USAGE.data_percent = 1.0  # type: ignore[misc]
    assert not hasattr(USAGE, "__dict__")  # slotted


# ---------------------------------------------------------------- pools without extensions


@pytest.mark.parametrize("name", ["pool-logical", "pool-dir", "pool-netfs-ns-mountopts"])
def test_no_extension_no_namespace(name: str) -> None:
    out = format_pool(libvirt_pool(name))
    assert "kvmpool" not in out
    assert out == (DATA / "storagepoolxml2xmlout" / f"{name}.xml").read_text(encoding="utf-8")


CORPUS_OUT = sorted((DATA / "storagepoolxml2xmlout").glob("*.xml"))


@pytest.mark.parametrize("path", CORPUS_OUT, ids=[p.stem for p in CORPUS_OUT])
def test_libvirt_corpus_is_untouched(path: Path) -> None:
    # test_xml_corpus.py replays the corpus in full; here: no trace of our namespace.
    expected = path.read_text(encoding="utf-8")
    pool = parse_pool(expected)
    assert (pool.thin_pool, pool.thin) == (None, None)
    assert format_pool(pool) == expected
    assert "kvmpool" not in expected


def test_unused_declaration_is_dropped() -> None:
    doc = THIN_IN.replace("  <kvmpool:thinpool name='thinpool0'/>\n", "")
    out = format_pool(parse_pool(doc))
    assert out == THIN_OUT.replace(
        " xmlns:kvmpool='http://kvmpool.org/schemas/storagepool/1.0'", ""
    ).replace("  <kvmpool:thinpool name='thinpool0'/>\n", "")
    validate(doc, "pool")


# ---------------------------------------------------------------- refused on parse


@pytest.mark.parametrize("pool_type", ["dir", "fs", "netfs", "disk", "zfs", "iscsi", "rbd"])
def test_thinpool_only_for_logical_pools(pool_type: str) -> None:
    corpus = {
        "dir": "pool-dir", "fs": "pool-fs", "netfs": "pool-netfs", "disk": "pool-disk",
        "zfs": "pool-zfs", "iscsi": "pool-iscsi", "rbd": "pool-rbd",
    }  # fmt: skip
    doc = (DATA / "storagepoolxml2xmlout" / f"{corpus[pool_type]}.xml").read_text()
    doc = doc.replace(f"<pool type='{pool_type}'", f"<pool type='{pool_type}' xmlns:kvmpool='{NS}'")
    doc = doc.replace("</pool>", "  <kvmpool:thinpool name='thinpool0'/>\n</pool>")
    with pytest.raises(
        XmlError,
        match=rf"^<kvmpool:thinpool> is only valid for 'logical' pools, "
        rf"not for pool type '{pool_type}'$",
    ):
        parse_pool(doc)
    with pytest.raises(XmlError, match="failed to validate against schema"):
        validate(doc, "pool")


def test_thinpool_on_a_dir_pool_is_not_formatted() -> None:
    pool = replace(libvirt_pool("pool-dir"), thin_pool="thinpool0")
    with pytest.raises(XmlError, match=r"only valid for 'logical' pools, not for pool type 'dir'"):
        format_pool(pool)


BAD_NAMES = [
    ("-thin", "may not start with '-'"),
    ("thin pool", "only letters, digits"),
    ("vg/thin", "only letters, digits"),
    ("thin:0", "only letters, digits"),
    ("thé", "only letters, digits"),
    (".", "reserved by LVM"),
    ("..", "reserved by LVM"),
    ("snapshot", "starting with 'snapshot'"),
    ("snapshot0", "starting with 'snapshot'"),
    ("pvmove1", "starting with 'pvmove'"),
    ("pool_tdata", "containing '_tdata'"),
    ("pool_tmeta", "containing '_tmeta'"),
    ("x_rimage_0", "containing '_rimage'"),
    ("a_cdata_b", "containing '_cdata'"),
    ("lv_vorigin", "containing '_vorigin'"),
    ("t" * 128, "longer than 127 characters"),
]
GOOD_NAMES = ["thinpool0", "thin.pool+1", "_tp", "tp-1", "my_pool", "Thin", "t" * 127, "x.y"]


@pytest.mark.parametrize(("name", "why"), BAD_NAMES)
def test_bad_lv_names_are_refused(name: str, why: str) -> None:
    doc = thin_pool(name)
    with pytest.raises(XmlError, match=f"^invalid thin pool name '{name}': .*{why}") as err:
        parse_pool(doc)
    assert isinstance(err.value, InvalidArgument)
    assert err.value.hint is not None
    assert "\n" not in str(err.value)
    # the schema agrees with the parser
    with pytest.raises(XmlError, match=r"failed to validate against schema kvmpool-storagepool"):
        validate(doc, "pool")
    # and nothing prints a name it would not read back
    with pytest.raises(XmlError, match="invalid thin pool name"):
        format_pool(replace(libvirt_pool("pool-logical"), thin_pool=name))


def test_empty_lv_name_is_refused() -> None:
    with pytest.raises(XmlError, match=r"^invalid thin pool name: it is empty$"):
        parse_pool(thin_pool(""))
    with pytest.raises(XmlError, match="kvmpool-storagepool"):
        validate(thin_pool(""), "pool")


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_lv_names_are_accepted(name: str) -> None:
    check_lv_name(name)
    pool = parse_pool(thin_pool(name))
    assert pool.thin_pool == name
    assert format_pool(pool) == thin_pool(name)
    validate(thin_pool(name), "pool")


def test_thinpool_needs_a_name() -> None:
    doc = THIN_OUT.replace("<kvmpool:thinpool name='thinpool0'/>", "<kvmpool:thinpool/>")
    with pytest.raises(
        XmlError, match=r"^Missing required attribute 'name' in element 'kvmpool:thinpool'$"
    ):
        parse_pool(doc)
    with pytest.raises(XmlError, match="kvmpool-storagepool"):
        validate(doc, "pool")


def test_one_thinpool_only() -> None:
    doc = THIN_OUT.replace(
        "  <kvmpool:thinpool name='thinpool0'/>\n",
        "  <kvmpool:thinpool name='a'/>\n  <kvmpool:thinpool name='b'/>\n",
    )
    with pytest.raises(XmlError, match=r"^more than one <kvmpool:thinpool> element$"):
        parse_pool(doc)
    with pytest.raises(XmlError, match="kvmpool-storagepool"):
        validate(doc, "pool")


TYPO = THIN_OUT.replace("kvmpool:thinpool", "kvmpool:thinpol")


def test_unknown_kvmpool_element_is_refused_not_ignored() -> None:
    # libvirt ignores what it does not know; a misspelt binding must not become thick LVs.
    with pytest.raises(XmlError, match=r"^unknown element <kvmpool:thinpol> \(namespace "):
        parse_pool(TYPO)


def test_kvmpool_element_in_the_wrong_place_is_refused() -> None:
    doc = THIN_OUT.replace(
        "    <format type='lvm2'/>\n", "    <format type='lvm2'/>\n    <kvmpool:thin/>\n"
    )
    with pytest.raises(
        XmlError, match=r"^element <kvmpool:thin> belongs in <pool>, not in <source>"
    ):
        parse_pool(doc)


def test_kvmpool_attribute_is_refused() -> None:
    doc = THIN_OUT.replace("<target>", "<target kvmpool:thin='yes'>")
    with pytest.raises(XmlError, match=r"^unknown attribute 'kvmpool:thin' in element 'target'"):
        parse_pool(doc)
    with pytest.raises(XmlError, match="kvmpool-storagepool"):
        validate(doc, "pool")


def test_libvirt_errors_come_first() -> None:
    doc = THIN_OUT.replace("<path>/dev/vg_guests</path>", "").replace(
        "<pool type='logical'", "<pool type='dir'"
    )
    with pytest.raises(XmlError, match=r"^missing storage pool target path$"):
        parse_pool(doc)


# ---------------------------------------------------------------- validation


def test_kvmpool_schema_compiles() -> None:
    assert KVMPOOL_SCHEMA.is_file()
    assert KVMPOOL_SCHEMA.parent.name == "schemas"
    assert KVMPOOL_SCHEMA.parent.parent.name == "xml"  # package data: kvmpool/xml/schemas
    assert isinstance(kvmpool_schema(), etree.RelaxNG)


def test_broken_schema_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rng"
    broken.write_text("<grammar xmlns='http://relaxng.org/ns/structure/1.0'><start/></grammar>")
    with pytest.raises(XmlError, match="does not load"):
        kvmpool_schema(broken)
    with pytest.raises(XmlError, match="does not load"):
        kvmpool_schema(tmp_path / "missing.rng")


def test_pool_with_extensions_validates() -> None:
    validate(THIN_OUT, "pool")
    validate(THIN_IN, "pool")
    validate(THIN_RUNNING, "pool")


def test_order_of_pool_children_is_free_as_in_libvirt() -> None:
    doc = THIN_OUT.replace(TP, "").replace(
        "  <name>guests</name>\n", TP + "  <name>guests</name>\n"
    )
    validate(doc, "pool")
    assert format_pool(parse_pool(doc)) == THIN_OUT


def test_typo_fails_validation() -> None:
    with pytest.raises(
        XmlError,
        match=r"failed to validate against schema kvmpool-storagepool\.rng: .*thinpol",
    ):
        validate(TYPO, "pool")


def test_libvirt_part_is_still_checked() -> None:
    doc = THIN_OUT.replace("  <target>\n", "  <bogus/>\n  <target>\n")
    with pytest.raises(XmlError, match=r"failed to validate against schema storagepool\.rng"):
        validate(doc, "pool")
    doc = THIN_OUT.replace("<pool type='logical'", "<pool type='logical' kind='x'")
    with pytest.raises(XmlError, match=r"failed to validate against schema storagepool\.rng"):
        validate(doc, "pool")


def test_foreign_namespace_is_not_ours() -> None:
    doc = THIN_OUT.replace(NS, "http://kvmpool.org/schemas/storagepool/2.0")
    with pytest.raises(XmlError, match=r"failed to validate against schema storagepool\.rng"):
        validate(doc, "pool")


def thin_line(**attrs: str) -> str:
    values = {"provisioned": "1", "data_used": "1", "data_percent": "1.00"}
    values["metadata_percent"] = "1.00"
    values.update(attrs)
    text = " ".join(f"{k}='{v}'" for k, v in values.items())
    return f"  <kvmpool:thin {text}/>\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # kvmpool elements only as children of <pool>
        (FMT, FMT + "    <kvmpool:thinpool name='x'/>\n"),
        # thin facts need the binding, come after it, and are well-formed
        (TP, thin_line()),
        (TP, thin_line() + TP),
        (TP, TP + thin_line(data_percent="12.5")),
        (TP, TP + thin_line(data_percent="100.01")),
        (TP, TP + thin_line(provisioned="-1")),
        (TP, TP + thin_line(data_used="1.5")),
        (TP, TP + "  <kvmpool:thin provisioned='1'/>\n"),
        # no content, no extra attributes
        (TP, "  <kvmpool:thinpool name='thinpool0'>x</kvmpool:thinpool>\n"),
        (TP, "  <kvmpool:thinpool name='thinpool0' size='1'/>\n"),
    ],
)
def test_schema_refuses(old: str, new: str) -> None:
    assert old in THIN_OUT
    with pytest.raises(XmlError, match=r"failed to validate against schema kvmpool-storagepool"):
        validate(THIN_OUT.replace(old, new), "pool")


def test_stripped_copy_is_libvirts_part() -> None:
    root = etree.fromstring(THIN_RUNNING.encode())
    stripped = without_namespace(root)
    assert NS not in stripped.nsmap.values()
    assert not [n for n in stripped.iter() if NS in str(n.tag)]
    assert root.find(f"{{{NS}}}thinpool") is not None  # the original is untouched
    plain = format_pool(replace(parse_pool(THIN_RUNNING), thin_pool=None))
    assert [n.tag for n in stripped.iter()] == [n.tag for n in etree.fromstring(plain).iter()]
