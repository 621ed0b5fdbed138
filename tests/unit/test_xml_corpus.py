"""libvirt 9.0's own storage XML tests, replayed against kvmpool.xml.

See tests/data/libvirt-xml/CORPUS.md: storagepoolxml2xmltest (38 cases),
storagevolxml2xmltest (20 cases) and virschematest (storage part).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmpool.errors import XmlError
from kvmpool.model import PoolDef, PoolType
from kvmpool.xml import format_pool, format_volume, parse_pool, parse_volume, validate
from kvmpool.xml.rng import SCHEMA_DIR

DATA = Path(__file__).resolve().parent.parent / "data" / "libvirt-xml"
POOL_IN = DATA / "storagepoolxml2xmlin"
POOL_OUT = DATA / "storagepoolxml2xmlout"
VOL_IN = DATA / "storagevolxml2xmlin"
VOL_OUT = DATA / "storagevolxml2xmlout"

POOL_CASES = [
    "pool-dir", "pool-dir-naming", "pool-dir-cow", "pool-fs",
    "pool-logical", "pool-logical-nopath", "pool-logical-create", "pool-logical-noname",
    "pool-disk", "pool-disk-device-nopartsep",
    "pool-iscsi", "pool-iscsi-auth",
    "pool-netfs", "pool-netfs-slash", "pool-netfs-auto", "pool-netfs-protocol-ver",
    "pool-netfs-gluster", "pool-netfs-cifs", "pool-netfs-ns-mountopts",
    "pool-scsi", "pool-scsi-type-scsi-host", "pool-scsi-type-fc-host",
    "pool-scsi-type-fc-host-managed",
    "pool-mpath",
    "pool-iscsi-multiiqn", "pool-iscsi-vendor-product",
    "pool-gluster", "pool-gluster-sub",
    "pool-scsi-type-scsi-host-stable",
    "pool-zfs", "pool-zfs-sourcedev",
    "pool-rbd", "pool-rbd-ipv6", "pool-rbd-refresh-volume-allocation", "pool-rbd-ns-configopts",
    "pool-vstorage",
    "pool-iscsi-direct-auth", "pool-iscsi-direct",
]  # fmt: skip

# (pool, volume, capacity_optional) as storagevolxml2xmltest.c lists them
VOL_CASES = [
    ("pool-dir", "vol-file", False),
    ("pool-dir", "vol-file-naming", False),
    ("pool-dir", "vol-file-backing", False),
    ("pool-dir", "vol-file-iso", False),
    ("pool-dir", "vol-qcow2", False),
    ("pool-dir", "vol-qcow2-1.1", False),
    ("pool-dir", "vol-qcow2-lazy", False),
    ("pool-dir", "vol-qcow2-0.10-lazy", False),
    ("pool-dir", "vol-qcow2-nobacking", False),
    ("pool-dir", "vol-qcow2-encryption", False),
    ("pool-dir", "vol-qcow2-luks", False),
    ("pool-dir", "vol-qcow2-clusterSize", False),
    ("pool-dir", "vol-luks", False),
    ("pool-dir", "vol-luks-cipher", False),
    ("pool-disk", "vol-partition", False),
    ("pool-logical", "vol-logical", False),
    ("pool-logical", "vol-logical-backing", False),
    ("pool-dir", "vol-qcow2-nocapacity", True),
    ("pool-gluster", "vol-gluster-dir", False),
    ("pool-gluster", "vol-gluster-dir-neg-uid", False),
]


def test_case_lists_cover_the_corpus() -> None:
    assert len(POOL_CASES) == 38
    assert sorted(POOL_CASES) == sorted(p.stem for p in POOL_OUT.glob("*.xml"))
    assert len(VOL_CASES) == 20
    outs = {p.stem for p in VOL_OUT.glob("*.xml")}
    assert outs - {v for _, v, _ in VOL_CASES} == {"vol-qcow2-nocow"}


@pytest.mark.parametrize("name", POOL_CASES)
def test_pool_xml2xml(name: str) -> None:
    pool = parse_pool((POOL_IN / f"{name}.xml").read_bytes())
    assert format_pool(pool) == (POOL_OUT / f"{name}.xml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", POOL_CASES)
def test_pool_xml2xml_is_a_fixed_point(name: str) -> None:
    expected = (POOL_OUT / f"{name}.xml").read_text(encoding="utf-8")
    assert format_pool(parse_pool(expected)) == expected


def _pool(name: str) -> PoolDef:
    return parse_pool((POOL_IN / f"{name}.xml").read_bytes())


@pytest.mark.parametrize(("pool_name", "vol_name", "optional"), VOL_CASES)
def test_vol_xml2xml(pool_name: str, vol_name: str, optional: bool) -> None:
    pool = _pool(pool_name)
    vol = parse_volume((VOL_IN / f"{vol_name}.xml").read_bytes(), pool, capacity_optional=optional)
    out = format_volume(vol, pool.type)
    assert out == (VOL_OUT / f"{vol_name}.xml").read_text(encoding="utf-8")


@pytest.mark.parametrize(("pool_name", "vol_name", "optional"), VOL_CASES)
def test_vol_xml2xml_is_a_fixed_point(pool_name: str, vol_name: str, optional: bool) -> None:
    pool = _pool(pool_name)
    expected = (VOL_OUT / f"{vol_name}.xml").read_text(encoding="utf-8")
    assert format_volume(parse_volume(expected, pool), pool.type) == expected


def test_nocapacity_needs_the_flag() -> None:
    with pytest.raises(XmlError, match=r"^missing capacity element$"):
        parse_volume((VOL_IN / "vol-qcow2-nocapacity.xml").read_bytes(), _pool("pool-dir"))


@pytest.mark.parametrize(
    "name",
    [
        "vol-file-qcow2",
        "vol-luks-convert",
        "vol-qcow2-luks-convert",
        "vol-qcow2-nocapacity-backing",
        "vol-qcow2-nocow",
        "vol-qcow2-zerocapacity",
    ],
)
def test_argv_only_vol_inputs_parse(name: str) -> None:
    pool = _pool("pool-dir")
    vol = parse_volume((VOL_IN / f"{name}.xml").read_bytes(), pool)
    validate(format_volume(vol, pool.type), "volume")


def test_orphan_gluster_without_slash_parses() -> None:
    pool = _pool("pool-netfs-gluster-without-slash")
    assert pool.source.dir == "volume"
    validate(format_pool(pool), "pool")


# ---------------------------------------------------------------- RelaxNG (virschematest)


def test_libvirt_schemas_are_installed() -> None:
    # The schema tests below must fail, not skip, without libvirt0's schemas.
    assert (SCHEMA_DIR / "storagepool.rng").is_file(), "apt-get install libvirt0"
    assert (SCHEMA_DIR / "storagevol.rng").is_file(), "apt-get install libvirt0"


SCHEMA_FILES = [
    ("pool", p)
    for d in ("storagepoolxml2xmlin", "storagepoolxml2xmlout", "storagepoolschemadata")
    for p in sorted((DATA / d).glob("*.xml"))
] + [
    ("volume", p)
    for d in ("storagevolxml2xmlin", "storagevolxml2xmlout", "storagevolschemadata")
    for p in sorted((DATA / d).glob("*.xml"))
]


def test_schema_corpus_size() -> None:
    assert len(SCHEMA_FILES) == 126


@pytest.mark.parametrize(
    ("kind", "path"), SCHEMA_FILES, ids=[f"{p.parent.name}/{p.name}" for _, p in SCHEMA_FILES]
)
def test_virschematest(kind: str, path: Path) -> None:
    doc = path.read_bytes()
    if path.name.endswith("-invalid.xml"):
        with pytest.raises(XmlError, match="failed to validate against schema"):
            validate(doc, kind)  # type: ignore[arg-type]
    else:
        validate(doc, kind)  # type: ignore[arg-type]


def test_invalid_schema_file_is_also_rejected_by_the_parser() -> None:
    doc = (DATA / "storagepoolschemadata" / "dir-missing-target-path-invalid.xml").read_bytes()
    with pytest.raises(XmlError, match=r"^missing storage pool target path$"):
        parse_pool(doc)


@pytest.mark.parametrize("name", POOL_CASES)
def test_formatted_pool_validates(name: str) -> None:
    validate(format_pool(_pool(name)), "pool")


@pytest.mark.parametrize(("pool_name", "vol_name", "optional"), VOL_CASES)
def test_formatted_volume_validates(pool_name: str, vol_name: str, optional: bool) -> None:
    pool = _pool(pool_name)
    vol = parse_volume((VOL_IN / f"{vol_name}.xml").read_bytes(), pool, capacity_optional=optional)
    validate(format_volume(vol, pool.type), "volume")


def test_pool_types_are_all_exercised() -> None:
    seen = {_pool(n).type for n in POOL_CASES}
    assert seen == set(PoolType) - {PoolType.SHEEPDOG}
