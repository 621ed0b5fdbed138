"""kvmpool.xml refuses what libvirt refuses, with libvirt's words, and never leaks files."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from kvmpool.errors import InvalidArgument, ToolMissing, XmlError
from kvmpool.model import PoolDef, PoolSource, PoolType, SourceDevice, SourceHost
from kvmpool.xml import (
    format_pool,
    format_sources,
    format_volume,
    parse_pool,
    parse_volume,
    validate,
)

DIR_POOL = """<pool type='dir'>
  <name>images</name>
  <target><path>/var/lib/images</path></target>
</pool>
"""


def dir_pool() -> PoolDef:
    return parse_pool(DIR_POOL)


def vol(body: str, vol_attrs: str = "") -> str:
    return f"<volume{vol_attrs}>\n  <name>v</name>\n{body}\n</volume>\n"


def pool_xml(pool_type: str, body: str) -> str:
    return f"<pool type='{pool_type}'>\n  <name>p</name>\n{body}\n</pool>\n"


def assert_one_line(err: pytest.ExceptionInfo[XmlError]) -> None:
    assert "\n" not in str(err.value)
    assert isinstance(err.value, InvalidArgument)


# ---------------------------------------------------------------- malformed documents


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        ("<pool type='dir'>\n  <name>x</nam>\n</pool>\n", 2),
        ("<pool type='dir'>\n\n\n  <name>x</name>\n", 5),  # end of data, after line 4
        ("", 1),
        ("<pool type='dir'>\n<name a='1' a='2'>x</name></pool>", 2),
    ],
)
def test_malformed_xml_names_the_line(doc: str, line: int) -> None:
    with pytest.raises(XmlError) as err:
        parse_pool(doc)
    assert re.fullmatch(rf"XML error: .+ at line {line}", str(err.value)), str(err.value)
    assert_one_line(err)


def test_malformed_volume_names_the_line() -> None:
    # the unclosed </capacity on line 3 is noticed at the '<' of line 4
    with pytest.raises(XmlError, match=r"^XML error: expected '>' at line 4$"):
        parse_volume("<volume>\n<name>v</name>\n<capacity>1</capacity\n</volume>", dir_pool())


@pytest.mark.parametrize("doc", ["<volume><name>v</name></volume>", "<domain/>", "<poolx/>"])
def test_unknown_root_element(doc: str) -> None:
    with pytest.raises(XmlError, match=r"^unexpected root element <\w+>, expecting <pool>$"):
        parse_pool(doc)


def test_volume_root_is_checked() -> None:
    with pytest.raises(XmlError, match="expecting <volume>"):
        parse_volume(DIR_POOL, dir_pool())


def test_str_with_encoding_declaration_parses() -> None:
    doc = "<?xml version='1.0' encoding='ISO-8859-1'?>\n" + DIR_POOL.replace("images", "imägés")
    assert parse_pool(doc).name == "imägés"
    assert parse_pool(doc.encode("iso-8859-1")).name == "imägés"


# ---------------------------------------------------------------- entities / XXE


XXE_DOCS = [
    # external entity: file contents
    """<?xml version="1.0"?>
<!DOCTYPE pool [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<pool type='dir'><name>&xxe;</name><target><path>/x</path></target></pool>""",
    # external entity in an attribute value
    """<!DOCTYPE pool [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<pool type='dir'><name>a</name><target><path>/x</path></target>
<source><dir path='&xxe;'/></source></pool>""",
    # network entity
    """<!DOCTYPE pool [<!ENTITY net SYSTEM "http://127.0.0.1:9/x">]>
<pool type='dir'><name>&net;</name><target><path>/x</path></target></pool>""",
    # parameter entity / external DTD subset
    """<!DOCTYPE pool [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>
<pool type='dir'><name>a</name><target><path>/x</path></target></pool>""",
    # billion laughs
    """<!DOCTYPE pool [
<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<pool type='dir'><name>&d;</name><target><path>/x</path></target></pool>""",
    # undeclared entity
    """<pool type='dir'><name>&nope;</name><target><path>/x</path></target></pool>""",
]


@pytest.mark.parametrize("doc", XXE_DOCS)
def test_entities_are_refused_and_nothing_leaks(doc: str) -> None:
    with pytest.raises(XmlError) as err:
        parse_pool(doc)
    assert_one_line(err)
    message = str(err.value)
    assert "root:" not in message  # /etc/passwd's first line
    assert "aaaaaaaaaa" not in message


def test_entities_refused_in_volumes_and_validate() -> None:
    with pytest.raises(XmlError):
        parse_volume(XXE_DOCS[0].replace("pool", "volume"), dir_pool())
    with pytest.raises(XmlError):
        validate(XXE_DOCS[0], "pool")


def test_doctype_without_entities_is_fine() -> None:
    assert parse_pool("<!DOCTYPE pool>\n" + DIR_POOL).name == "images"


# ---------------------------------------------------------------- pool rules


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            pool_xml("dir", "  <target><permissions><mode>0700</mode></permissions></target>"),
            "missing storage pool target path",
        ),
        (pool_xml("dir", ""), "missing storage pool target path"),
        (
            "<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>",
            "name a/b cannot contain '/'",
        ),
        (
            "<pool type='logical'><source><name>vg/x</name></source></pool>",
            "name vg/x cannot contain '/'",
        ),
        (
            "<pool type='dir'><target><path>/x</path></target></pool>",
            "missing pool source name element",
        ),
        ("<pool><name>a</name></pool>", "Missing required attribute 'type' in element 'pool'"),
        (
            "<pool type='lvm'><name>a</name></pool>",
            "Invalid value for attribute 'type' in element 'pool': 'lvm'",
        ),
        (
            pool_xml("netfs", "<source><dir path='/e'/></source><target><path>/m</path></target>"),
            "missing storage pool source host name",
        ),
        (
            pool_xml("netfs", "<source><host name='h'/></source><target><path>/m</path></target>"),
            "missing storage pool source path",
        ),
        (
            pool_xml("fs", "<target><path>/m</path></target>"),
            "missing storage pool source device name",
        ),
        (
            pool_xml(
                "disk", "<source><format type='dos'/></source><target><path>/dev</path></target>"
            ),
            "missing storage pool source device name",
        ),
        (
            pool_xml("scsi", "<target><path>/dev</path></target>"),
            "missing storage pool source adapter",
        ),
        (
            pool_xml(
                "scsi",
                "<source><adapter type='fc_host' wwnn='20000000c9831b4b'/></source>"
                "<target><path>/dev</path></target>",
            ),
            "'wwnn' and 'wwpn' must be specified for adapter type 'fchost'",
        ),
        (
            pool_xml(
                "scsi",
                "<source><adapter type='fc_host' wwnn='xyz' wwpn='10000000c9831b4b'/>"
                "</source><target><path>/dev</path></target>",
            ),
            "Malformed wwn: xyz",
        ),
        (
            pool_xml(
                "scsi",
                "<source><adapter name='host0' parent='x'/></source>"
                "<target><path>/dev</path></target>",
            ),
            "Use of 'wwnn', 'wwpn', and 'parent' attributes requires use of the adapter 'type'",
        ),
        (
            pool_xml(
                "scsi",
                "<source><adapter type='scsi_host'/></source><target><path>/dev</path></target>",
            ),
            "Either 'name' or 'parent' must be specified for the 'scsi_host' adapter",
        ),
        (
            pool_xml("rbd", "<source><host name='mon'/></source>"),
            "element 'name' is mandatory for RBD pool",
        ),
        (pool_xml("rbd", ""), "missing storage pool source host name"),
        (
            pool_xml("gluster", "<source><name>v</name></source>"),
            "missing storage pool source host name",
        ),
        (
            pool_xml(
                "iscsi", "<source><device path='t'/></source><target><path>/d</path></target>"
            ),
            "missing storage pool source host name",
        ),
        (
            pool_xml("iscsi-direct", "<source><host name='h'/><device path='t'/></source>"),
            "missing initiator IQN",
        ),
        (
            pool_xml(
                "netfs",
                "<source><host name='h'/><dir path='/e'/><format type='cifs'/>"
                "<protocol ver='3'/></source><target><path>/m</path></target>",
            ),
            "storage pool protocol ver unsupported for pool type 'cifs'",
        ),
        (
            pool_xml(
                "netfs",
                "<source><host name='h'/><dir path='/e'/>"
                "<protocol ver='3,soft'/></source><target><path>/m</path></target>",
            ),
            "storage pool protocol ver '3,soft' must not contain ','",
        ),
        (
            pool_xml(
                "netfs",
                "<source><host name='h'/><dir path='/e'/><format type='smb'/>"
                "</source><target><path>/m</path></target>",
            ),
            "unknown pool format type smb",
        ),
        (
            pool_xml("dir", "<uuid>not-a-uuid</uuid><target><path>/x</path></target>"),
            "malformed uuid element",
        ),
        (
            pool_xml(
                "dir",
                "<target><path>/x</path><permissions><mode>0800</mode></permissions></target>",
            ),
            "malformed octal mode",
        ),
        (
            pool_xml(
                "dir",
                "<target><path>/x</path><permissions><mode>01777</mode></permissions></target>",
            ),
            "malformed octal mode",
        ),
        (
            pool_xml(
                "dir",
                "<target><path>/x</path><permissions><owner>root</owner></permissions></target>",
            ),
            "malformed owner element",
        ),
        (
            pool_xml(
                "dir",
                "<target><path>/x</path><permissions><group>4294967296</group>"
                "</permissions></target>",
            ),
            "malformed group element",
        ),
        (
            pool_xml(
                "netfs",
                "<features><cow state='yes'/></features><source><host name='h'/>"
                "<dir path='/e'/></source><target><path>/m</path></target>",
            ),
            "cow feature may only be used for 'fs' and 'dir' pools",
        ),
        (
            pool_xml(
                "iscsi",
                "<source><host name='h'/><device path='t'/><auth type='kerberos' "
                "username='u'><secret usage='x'/></auth></source>"
                "<target><path>/d</path></target>",
            ),
            "unknown auth type 'kerberos'",
        ),
        (
            pool_xml(
                "iscsi",
                "<source><host name='h'/><device path='t'/><auth username='u'>"
                "<secret usage='x'/></auth></source><target><path>/d</path></target>",
            ),
            "storage pool missing auth type",
        ),
        (
            pool_xml(
                "iscsi",
                "<source><host name='h'/><device path='t'/><auth type='chap' "
                "username='u'><secret/></auth></source><target><path>/d</path></target>",
            ),
            "missing secret uuid or usage attribute",
        ),
        (
            pool_xml(
                "dir",
                "<target><path>/x</path></target><refresh><volume allocation='all'/></refresh>",
            ),
            "unknown storage pool volume refresh allocation type all",
        ),
        (
            pool_xml(
                "netfs",
                "<source><host name='h' port='x'/><dir path='/e'/></source>"
                "<target><path>/m</path></target>",
            ),
            "Invalid value for attribute 'port' in element 'host': 'x'. Expected integer value",
        ),
    ],
)
def test_pool_rules(doc: str, message: str) -> None:
    with pytest.raises(XmlError) as err:
        parse_pool(doc)
    assert str(err.value) == message
    assert_one_line(err)


def test_name_errors_are_one_line() -> None:
    with pytest.raises(XmlError) as err:
        parse_pool("<pool type='dir'><name>a\nb/c</name><target><path>/x</path></target></pool>")
    assert str(err.value) == "name a b/c cannot contain '/'"


def test_pool_defaults() -> None:
    pool = parse_pool("<pool type='logical'><source><name>vg0</name></source></pool>")
    assert pool.name == "vg0"
    assert pool.target.path == "/dev/vg0"
    assert pool.source.format == "lvm2"
    uuid.UUID(pool.uuid)  # a generated uuid4
    assert uuid.UUID(pool.uuid).version == 4
    assert parse_pool(DIR_POOL).uuid != parse_pool(DIR_POOL).uuid
    netfs = parse_pool(
        pool_xml(
            "netfs",
            "<source><host name='h'/><dir path='/e//'/></source><target><path>/m/</path></target>",
        )
    )
    assert (netfs.source.format, netfs.source.dir, netfs.target.path) == ("auto", "/e", "/m")
    gluster = parse_pool(pool_xml("gluster", "<source><host name='h'/></source>"))
    assert (gluster.source.dir, gluster.source.name) == ("/", "p")


def test_uuid_is_canonicalised() -> None:
    pool = parse_pool(
        pool_xml(
            "dir",
            "<uuid> 70A7EB156C34EE9C-BF5769E8E5FF3FB2 </uuid><target><path>/x</path></target>",
        )
    )
    assert pool.uuid == "70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2"


def test_capacity_in_pool_input_is_ignored() -> None:
    pool = parse_pool(
        pool_xml(
            "dir",
            "<capacity>99</capacity><available>junk</available><target><path>/x</path></target>",
        )
    )
    assert (pool.capacity, pool.allocation, pool.available) == (0, 0, 0)


# ---------------------------------------------------------------- volume rules


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (vol("<target><path>/x</path></target>"), "missing capacity element"),
        (vol("<capacity></capacity>"), "missing capacity element"),
        ("<volume><capacity>1</capacity></volume>", "missing volume name element"),
        (
            vol("<capacity>1</capacity><target><format type='qcow3'/></target>"),
            "unknown volume format type qcow3",
        ),
        (
            vol("<capacity>1</capacity><target><format type='none'/></target>"),
            "unknown volume format type none",
        ),
        (
            vol(
                "<capacity>1</capacity><backingStore><path>/b</path><format type='zip'/>"
                "</backingStore>"
            ),
            "unknown volume format type zip",
        ),
        (vol("<capacity>1</capacity>", " type='object'"), "unknown volume type 'object'"),
        (vol("<capacity>-1</capacity>"), "malformed capacity element"),
        (vol("<capacity>1x</capacity>"), "malformed capacity element"),
        (vol("<capacity unit='XB'>1</capacity>"), "unknown suffix 'XB'"),
        (vol("<capacity unit='EiB'>8</capacity>"), "value too large"),
        (vol("<capacity>1</capacity><allocation>a</allocation>"), "malformed allocation element"),
        (
            vol("<capacity>1</capacity><target><permissions><mode>8</mode></permissions></target>"),
            "malformed octal mode",
        ),
        (
            vol("<capacity>1</capacity><target><compat>1.1.1</compat></target>"),
            "forbidden characters in 'compat' attribute",
        ),
        (
            vol("<capacity>1</capacity><target><features><zstd/></features></target>"),
            "unsupported feature zstd",
        ),
        (
            vol("<capacity>1</capacity><target><encryption/></target>"),
            "unknown volume encryption format",
        ),
        (
            vol("<capacity>1</capacity><target><encryption format='aes'/></target>"),
            "unknown volume encryption format type aes",
        ),
        (
            vol(
                "<capacity>1</capacity><target><encryption format='luks'><secret uuid="
                "'f52a81b2-424e-490c-823d-6bd4235bc572'/></encryption></target>"
            ),
            "unknown volume encryption secret type",
        ),
        (
            vol(
                "<capacity>1</capacity><target><encryption format='luks'><secret type='key' "
                "usage='x'/></encryption></target>"
            ),
            "unknown volume encryption secret type key",
        ),
        (
            vol(
                "<capacity>1</capacity><target><encryption format='luks'><secret "
                "type='passphrase' uuid='zz'/></encryption></target>"
            ),
            "invalid secret uuid 'zz'",
        ),
        (
            vol(
                "<capacity>1</capacity><target><encryption format='luks'>"
                "<ivgen name='plain64'/></encryption></target>"
            ),
            "ivgen element found, but cipher is missing",
        ),
        (
            vol(
                "<capacity>1</capacity><target><encryption format='luks'>"
                "<cipher name='aes'/></encryption></target>"
            ),
            "Missing required attribute 'size' in element 'cipher'",
        ),
        (
            vol("<capacity>1</capacity><target><clusterSize unit='KiB'>x</clusterSize></target>"),
            "malformed clusterSize element",
        ),
    ],
)
def test_volume_rules(doc: str, message: str) -> None:
    with pytest.raises(XmlError) as err:
        parse_volume(doc, dir_pool())
    assert str(err.value) == message
    assert_one_line(err)


def test_capacity_optional_and_backing() -> None:
    pool = dir_pool()
    v = parse_volume(vol("<target><format type='qcow2'/></target>"), pool, capacity_optional=True)
    assert v.capacity is None and v.allocation is None
    backed = parse_volume(vol("<backingStore><path>/b.img</path></backingStore>"), pool)
    assert backed.capacity is None
    assert backed.backing_store is not None and backed.backing_store.format == "raw"


def test_volume_values() -> None:
    v = parse_volume(
        vol(
            "<capacity unit='G'>2</capacity><target><permissions><mode>0600</mode>"
            "<owner>-1</owner><group>0107</group></permissions><features><lazy_refcounts/>"
            "</features><clusterSize unit='KiB'>64</clusterSize></target>"
        ),
        dir_pool(),
    )
    assert v.capacity == 2 * 1024**3
    assert v.allocation is None
    perms = v.target.permissions
    assert perms is not None and (perms.mode, perms.owner, perms.group) == (0o600, None, 107)
    assert (v.target.compat, v.target.cluster_size, v.target.lazy_refcounts) == (
        "1.1",
        65536,
        True,
    )
    out = format_volume(v, PoolType.DIR)
    assert "<allocation unit='bytes'>2147483648</allocation>" in out
    validate(out, "volume")


def test_vol_format_per_pool_type() -> None:
    doc = vol("<capacity>1</capacity><target><format type='qcow2'/></target>")
    logical = parse_pool("<pool type='logical'><source><name>vg</name></source></pool>")
    assert parse_volume(doc, logical).target.format is None
    assert "<format" not in format_volume(parse_volume(doc, logical), PoolType.LOGICAL)
    disk = parse_pool(
        pool_xml(
            "disk", "<source><device path='/dev/sda'/></source><target><path>/dev</path></target>"
        )
    )
    with pytest.raises(XmlError, match=r"^unknown volume format type qcow2$"):
        parse_volume(doc, disk)
    part = parse_volume(vol("<capacity>1</capacity>"), disk)
    assert "<format type='none'/>" in format_volume(part, PoolType.DISK)


# ---------------------------------------------------------------- kvmpool's two deviations


@pytest.mark.parametrize("fmt", ["vhdx", "parallels"])
def test_vhdx_and_parallels_are_accepted_and_validate(fmt: str) -> None:
    pool = dir_pool()
    v = parse_volume(
        vol(
            f"<capacity>1</capacity><target><path>/x/v</path><format type='{fmt}'/></target>"
            f"<backingStore><path>/x/b</path><format type='{fmt}'/></backingStore>"
        ),
        pool,
    )
    out = format_volume(v, pool.type)
    assert out.count(f"<format type='{fmt}'/>") == 2
    validate(out, "volume")


def test_validate_relaxes_nothing_else() -> None:
    good = format_volume(parse_volume(vol("<capacity>1</capacity>"), dir_pool()), PoolType.DIR)
    validate(good, "volume")
    for bad in (
        good.replace("<format type='raw'/>", "<format type='qcow3'/>"),
        good.replace("<name>v</name>", "<name>v</name>\n  <kvmpool/>"),
        good.replace("volume type='file'", "volume type='vhdx'"),
    ):
        with pytest.raises(XmlError, match=r"failed to validate against schema storagevol\.rng"):
            validate(bad, "volume")
    with pytest.raises(XmlError, match="failed to validate"):
        validate(DIR_POOL.replace("<name>images</name>", "<nom>images</nom>"), "pool")


# ---------------------------------------------------------------- backend-filled values


def test_backend_facts_are_printed_and_valid() -> None:
    from dataclasses import replace

    from kvmpool.model import Extent, ExtentDevice, FreeExtent, Timestamps

    v = parse_volume(vol("<capacity>1048576</capacity><allocation>0</allocation>"), dir_pool())
    v = replace(
        v,
        key="/var/lib/images/v",
        physical=4096,
        source=(ExtentDevice("/dev/sda", (Extent(0, 512), Extent(1024, 2048))),),
        target=replace(
            v.target,
            path="/var/lib/images/v",
            timestamps=Timestamps(atime="1341933637.273190990", mtime="1341930622"),
        ),
    )
    out = format_volume(v, PoolType.DIR)
    assert out == (
        "<volume type='file'>\n"
        "  <name>v</name>\n"
        "  <key>/var/lib/images/v</key>\n"
        "  <source>\n"
        "    <device path='/dev/sda'>\n"
        "      <extent start='0' end='512'/>\n"
        "      <extent start='1024' end='2048'/>\n"
        "    </device>\n"
        "  </source>\n"
        "  <capacity unit='bytes'>1048576</capacity>\n"
        "  <allocation unit='bytes'>0</allocation>\n"
        "  <physical unit='bytes'>4096</physical>\n"
        "  <target>\n"
        "    <path>/var/lib/images/v</path>\n"
        "    <format type='raw'/>\n"
        "    <timestamps>\n"
        "      <atime>1341933637.273190990</atime>\n"
        "      <mtime>1341930622</mtime>\n"
        "    </timestamps>\n"
        "  </target>\n"
        "</volume>\n"
    )
    validate(out, "volume")
    # input extents, timestamps and physical are not read back (libvirt does the same)
    again = parse_volume(out, dir_pool())
    assert again.source == () and again.physical == 0 and again.target.timestamps is None

    disk = parse_pool(
        pool_xml(
            "disk", "<source><device path='/dev/sda'/></source><target><path>/dev</path></target>"
        )
    )
    source = replace(
        disk.source,
        devices=(SourceDevice("/dev/sda", free_extents=(FreeExtent(32256, 1048576),)),),
    )
    out = format_pool(replace(disk, source=source, capacity=10, allocation=5, available=5))
    assert "    <device path='/dev/sda'>\n      <freeExtent start='32256' end='1048576'/>\n" in out
    assert "<capacity unit='bytes'>10</capacity>" in out
    validate(out, "pool")


def test_format_sources() -> None:
    netfs = [
        PoolSource(hosts=(SourceHost("nfs.example.com"),), dir="/export/a", format="nfs"),
        PoolSource(hosts=(SourceHost("nfs.example.com"),), dir="/export/b", format="nfs"),
    ]
    assert format_sources(netfs, PoolType.NETFS) == (
        "<sources>\n"
        "  <source>\n"
        "    <host name='nfs.example.com'/>\n"
        "    <dir path='/export/a'/>\n"
        "    <format type='nfs'/>\n"
        "  </source>\n"
        "  <source>\n"
        "    <host name='nfs.example.com'/>\n"
        "    <dir path='/export/b'/>\n"
        "    <format type='nfs'/>\n"
        "  </source>\n"
        "</sources>\n"
    )
    logical = [PoolSource(devices=(SourceDevice("/dev/sdb1"),), name="vg0", format="lvm2")]
    assert format_sources(logical, PoolType.LOGICAL) == (
        "<sources>\n"
        "  <source>\n"
        "    <device path='/dev/sdb1'/>\n"
        "    <name>vg0</name>\n"
        "    <format type='lvm2'/>\n"
        "  </source>\n"
        "</sources>\n"
    )
    assert format_sources([], PoolType.NETFS) == "<sources>\n</sources>\n"


def test_escaping() -> None:
    pool = parse_pool(
        "<pool type='dir'><name>a&amp;b&lt;'\"</name><target><path>/x</path></target></pool>"
    )
    out = format_pool(pool)
    assert "<name>a&amp;b&lt;&apos;&quot;</name>" in out
    assert parse_pool(out).name == "a&b<'\""


def test_external_dtd_is_never_loaded() -> None:
    body = "<pool type='dir'><name>{}</name><target><path>/x</path></target></pool>"
    doctype = '<!DOCTYPE pool SYSTEM "file:///etc/passwd">\n'
    assert parse_pool(doctype + body.format("a")).name == "a"
    with pytest.raises(XmlError, match="entity references are not allowed"):
        parse_pool(doctype + body.format("&x;"))


def test_missing_schemas_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="libvirt0"):
        validate(DIR_POOL, "pool", schema_dir=tmp_path)


def test_sheepdog_has_no_target_and_validates() -> None:
    doc = "<pool type='sheepdog'><source><name>s</name><host name='h' port='7000'/></source></pool>"
    out = format_pool(parse_pool(doc))
    assert "<target>" not in out
    assert "    <host name='h' port='7000'/>\n    <name>s</name>\n" in out
    validate(out, "pool")
    assert format_pool(parse_pool(out)) == out


def test_rbd_volumes_carry_a_format() -> None:
    rbd = parse_pool(
        "<pool type='rbd'><name>ceph</name><source><name>rbd</name><host name='mon'/>"
        "</source></pool>"
    )
    out = format_volume(parse_volume(vol("<capacity>1</capacity>"), rbd), rbd.type)
    assert "<format type='raw'/>" in out
