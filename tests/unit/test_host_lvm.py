# ruff: noqa: E501  (the recorded lvm2 JSON below is kept byte for byte, long rows included)
"""kvmpool.host.lvm on recorded lvm2 output, argv goldens, the error classifier, Lvm.

The JSON and stderr samples were recorded in the test VM (tests/vm/run: Debian 12,
lvm2 2.03.16, kernel 6.1) on two 512 MiB virtio disks with: a linear LV "lin" (8 MiB),
a linear LV "big" (600 MiB, spanning both PVs), a classic snapshot "snap1" of lin, a
sparse LV "sparse" (libvirt's --type snapshot --virtualsize), a thin pool "pool", a thin
LV "thin1" and its thin snapshot "tsnap".
"""

from __future__ import annotations

import json

import pytest

from kvmpool.errors import (
    AlreadyExists,
    HostCommandFailed,
    InUse,
    InvalidArgument,
    KvmpoolError,
    NotFound,
    ToolMissing,
)
from kvmpool.host import lvm
from kvmpool.host.lvm import (
    NO_UDEV_CONFIG,
    LogicalVolume,
    Lvm,
    Segment,
    SegmentDevice,
    classify,
    meaningful_lines,
    parse_lvs,
    parse_pvs,
    parse_vgs,
)
from kvmpool.host.run import Completed, Runner

MiB = 1 << 20

PVS_JSON = """\
  {
      "report": [
          {
              "pv": [
                  {"pv_name":"/dev/vda", "vg_name":"vg0", "pv_uuid":"3e6gQE-U6Bf-5s3j-NHPL-q4MT-9sHh-H2gXPv", "pv_size":"532676608", "pv_free":"343932928", "pv_used":"188743680", "pv_fmt":"lvm2", "pv_attr":"a--", "dev_size":"536870912", "pe_start":"1048576"},
                  {"pv_name":"/dev/vdb", "vg_name":"vg0", "pv_uuid":"3BpLZq-YzW0-yD4z-VrED-D7Tv-P2fV-WvWjpr", "pv_size":"532676608", "pv_free":"0", "pv_used":"532676608", "pv_fmt":"lvm2", "pv_attr":"a--", "dev_size":"536870912", "pe_start":"1048576"}
              ]
          }
      ]
  }
"""

VGS_JSON = """\
  {
      "report": [
          {
              "vg": [
                  {"vg_name":"vg0", "vg_uuid":"dZdEtw-unR9-Hynm-VMKm-iRuD-whGY-upfvVv", "vg_size":"1065353216", "vg_free":"343932928", "vg_extent_size":"4194304", "vg_extent_count":"254", "vg_free_count":"82", "pv_count":"2", "lv_count":"7", "snap_count":"2", "vg_attr":"wz--n-"}
              ]
          }
      ]
  }
"""

LVS_JSON = """\
  {
      "report": [
          {
              "lv": [
                  {"lv_name":"big", "vg_name":"vg0", "lv_uuid":"qdulr5-0K0s-KpFr-s5nz-nUiF-vSrX-kKt9mI", "lv_path":"/dev/vg0/big", "lv_size":"629145600", "lv_attr":"-wi-a-----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"532676608", "stripes":"1", "devices":"/dev/vdb(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"big", "vg_name":"vg0", "lv_uuid":"qdulr5-0K0s-KpFr-s5nz-nUiF-vSrX-kKt9mI", "lv_path":"/dev/vg0/big", "lv_size":"629145600", "lv_attr":"-wi-a-----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"532676608", "seg_size":"96468992", "stripes":"1", "devices":"/dev/vda(2)", "vg_extent_size":"4194304"},
                  {"lv_name":"lin", "vg_name":"vg0", "lv_uuid":"uTh1kM-QICx-stm3-AQL3-n3YC-EAWE-92czSg", "lv_path":"/dev/vg0/lin", "lv_size":"8388608", "lv_attr":"owi-a-s---", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"8388608", "stripes":"1", "devices":"/dev/vda(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"pool", "vg_name":"vg0", "lv_uuid":"VzAmiI-JJ3g-ikJs-IMbQ-Lk2f-H5Es-zefj8F", "lv_path":"", "lv_size":"67108864", "lv_attr":"twi-aotz--", "origin":"", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"10.94", "segtype":"thin-pool", "seg_start":"0", "seg_size":"67108864", "stripes":"1", "devices":"pool_tdata(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"snap1", "vg_name":"vg0", "lv_uuid":"l2c0Rn-jgKT-R5kT-0QGQ-rQ3Y-e4cK-Jg0o4d", "lv_path":"/dev/vg0/snap1", "lv_size":"4194304", "lv_attr":"swi-a-s---", "origin":"lin", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(25)", "vg_extent_size":"4194304"},
                  {"lv_name":"sparse", "vg_name":"vg0", "lv_uuid":"m2ECHN-nC0f-on1v-Hwzs-Q3R5-XX9z-tqYvyF", "lv_path":"/dev/vg0/sparse", "lv_size":"4194304", "lv_attr":"swi-a-s---", "origin":"[sparse_vorigin]", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(26)", "vg_extent_size":"4194304"},
                  {"lv_name":"thin1", "vg_name":"vg0", "lv_uuid":"zpxfdG-YAeD-oNMV-tR9x-kNsn-Qz3n-abXNFc", "lv_path":"/dev/vg0/thin1", "lv_size":"134217728", "lv_attr":"Vwi-a-tz--", "origin":"", "pool_lv":"pool", "data_percent":"0.00", "metadata_percent":"", "segtype":"thin", "seg_start":"0", "seg_size":"134217728", "stripes":"0", "devices":"", "vg_extent_size":"4194304"},
                  {"lv_name":"tsnap", "vg_name":"vg0", "lv_uuid":"KnsLLR-SLOm-DAyR-lUOa-PpA7-HBQq-J9JjXD", "lv_path":"/dev/vg0/tsnap", "lv_size":"134217728", "lv_attr":"Vwi---tz-k", "origin":"thin1", "pool_lv":"pool", "data_percent":"", "metadata_percent":"", "segtype":"thin", "seg_start":"0", "seg_size":"134217728", "stripes":"0", "devices":"", "vg_extent_size":"4194304"}
              ]
          }
      ]
  }
"""

LVS_ALL_JSON = """\
  {
      "report": [
          {
              "lv": [
                  {"lv_name":"big", "vg_name":"vg0", "lv_uuid":"qdulr5-0K0s-KpFr-s5nz-nUiF-vSrX-kKt9mI", "lv_path":"/dev/vg0/big", "lv_size":"629145600", "lv_attr":"-wi-a-----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"532676608", "stripes":"1", "devices":"/dev/vdb(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"big", "vg_name":"vg0", "lv_uuid":"qdulr5-0K0s-KpFr-s5nz-nUiF-vSrX-kKt9mI", "lv_path":"/dev/vg0/big", "lv_size":"629145600", "lv_attr":"-wi-a-----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"532676608", "seg_size":"96468992", "stripes":"1", "devices":"/dev/vda(2)", "vg_extent_size":"4194304"},
                  {"lv_name":"lin", "vg_name":"vg0", "lv_uuid":"uTh1kM-QICx-stm3-AQL3-n3YC-EAWE-92czSg", "lv_path":"/dev/vg0/lin", "lv_size":"8388608", "lv_attr":"owi-a-s---", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"8388608", "stripes":"1", "devices":"/dev/vda(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"[lvol0_pmspare]", "vg_name":"vg0", "lv_uuid":"Hs2fOd-idm6-ypMt-XdfG-5kc8-xHyT-IPYukU", "lv_path":"", "lv_size":"4194304", "lv_attr":"ewi-------", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(27)", "vg_extent_size":"4194304"},
                  {"lv_name":"pool", "vg_name":"vg0", "lv_uuid":"VzAmiI-JJ3g-ikJs-IMbQ-Lk2f-H5Es-zefj8F", "lv_path":"", "lv_size":"67108864", "lv_attr":"twi-aotz--", "origin":"", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"10.94", "segtype":"thin-pool", "seg_start":"0", "seg_size":"67108864", "stripes":"1", "devices":"pool_tdata(0)", "vg_extent_size":"4194304"},
                  {"lv_name":"[pool_tdata]", "vg_name":"vg0", "lv_uuid":"teq7ID-fBG6-xvj3-PUis-6bhI-OmI1-oOOFsU", "lv_path":"", "lv_size":"67108864", "lv_attr":"Twi-ao----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"67108864", "stripes":"1", "devices":"/dev/vda(28)", "vg_extent_size":"4194304"},
                  {"lv_name":"[pool_tmeta]", "vg_name":"vg0", "lv_uuid":"Y3IATD-391E-pVTB-F3eF-NCj2-faXp-9E19g1", "lv_path":"", "lv_size":"4194304", "lv_attr":"ewi-ao----", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(44)", "vg_extent_size":"4194304"},
                  {"lv_name":"snap1", "vg_name":"vg0", "lv_uuid":"l2c0Rn-jgKT-R5kT-0QGQ-rQ3Y-e4cK-Jg0o4d", "lv_path":"/dev/vg0/snap1", "lv_size":"4194304", "lv_attr":"swi-a-s---", "origin":"lin", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(25)", "vg_extent_size":"4194304"},
                  {"lv_name":"sparse", "vg_name":"vg0", "lv_uuid":"m2ECHN-nC0f-on1v-Hwzs-Q3R5-XX9z-tqYvyF", "lv_path":"/dev/vg0/sparse", "lv_size":"4194304", "lv_attr":"swi-a-s---", "origin":"[sparse_vorigin]", "pool_lv":"", "data_percent":"0.00", "metadata_percent":"", "segtype":"linear", "seg_start":"0", "seg_size":"4194304", "stripes":"1", "devices":"/dev/vda(26)", "vg_extent_size":"4194304"},
                  {"lv_name":"[sparse_vorigin]", "vg_name":"vg0", "lv_uuid":"uvViX3-1lhH-vLdR-zVpA-dnCK-DoJv-WCsP4G", "lv_path":"", "lv_size":"67108864", "lv_attr":"ori-a-s---", "origin":"", "pool_lv":"", "data_percent":"", "metadata_percent":"", "segtype":"zero", "seg_start":"0", "seg_size":"67108864", "stripes":"0", "devices":"", "vg_extent_size":"4194304"},
                  {"lv_name":"thin1", "vg_name":"vg0", "lv_uuid":"zpxfdG-YAeD-oNMV-tR9x-kNsn-Qz3n-abXNFc", "lv_path":"/dev/vg0/thin1", "lv_size":"134217728", "lv_attr":"Vwi-a-tz--", "origin":"", "pool_lv":"pool", "data_percent":"0.00", "metadata_percent":"", "segtype":"thin", "seg_start":"0", "seg_size":"134217728", "stripes":"0", "devices":"", "vg_extent_size":"4194304"},
                  {"lv_name":"tsnap", "vg_name":"vg0", "lv_uuid":"KnsLLR-SLOm-DAyR-lUOa-PpA7-HBQq-J9JjXD", "lv_path":"/dev/vg0/tsnap", "lv_size":"134217728", "lv_attr":"Vwi---tz-k", "origin":"thin1", "pool_lv":"pool", "data_percent":"", "metadata_percent":"", "segtype":"thin", "seg_start":"0", "seg_size":"134217728", "stripes":"0", "devices":"", "vg_extent_size":"4194304"}
              ]
          }
      ]
  }
"""

VGS_EMPTY_JSON = """\
  {
      "report": [
          {
              "vg": [
              ]
          }
      ]
  }
"""

# ----------------------------------------------------------------------------- parsers


def test_parse_pvs() -> None:
    pvs = parse_pvs(PVS_JSON)
    assert [pv.name for pv in pvs] == ["/dev/vda", "/dev/vdb"]
    vda = pvs[0]
    assert vda == lvm.PhysicalVolume(
        name="/dev/vda",
        vg="vg0",
        uuid="3e6gQE-U6Bf-5s3j-NHPL-q4MT-9sHh-H2gXPv",
        size=532676608,
        free=343932928,
        fmt="lvm2",
        attr="a--",
    )
    assert pvs[1].free == 0


def test_parse_vgs() -> None:
    (vg,) = parse_vgs(VGS_JSON)
    assert vg == lvm.VolumeGroup(
        name="vg0",
        uuid="dZdEtw-unR9-Hynm-VMKm-iRuD-whGY-upfvVv",
        size=1065353216,
        free=343932928,
        extent_size=4 * MiB,
        extent_count=254,
        free_count=82,
        pv_count=2,
        lv_count=7,
        attr="wz--n-",
    )
    assert vg.free == vg.free_count * vg.extent_size


def test_parse_vgs_of_a_missing_vg_is_empty() -> None:
    assert parse_vgs(VGS_EMPTY_JSON) == ()


def test_parse_lvs_kinds() -> None:
    lvs = {lv.name: lv for lv in parse_lvs(LVS_JSON)}
    assert list(lvs) == ["big", "lin", "pool", "snap1", "sparse", "thin1", "tsnap"]

    lin = lvs["lin"]
    assert (lin.vg, lin.path, lin.size, lin.segtype) == ("vg0", "/dev/vg0/lin", 8 * MiB, "linear")
    assert lin.active and not lin.open and lin.is_origin and not lin.is_snapshot
    assert lin.data_percent is None and lin.metadata_percent is None
    assert lin.devices == ("/dev/vda",) and lin.extent_size == 4 * MiB

    snap = lvs["snap1"]
    assert snap.is_snapshot and not snap.is_sparse and not snap.is_thin
    assert snap.origin == "lin" and snap.backing == "lin" and snap.data_percent == 0.0

    sparse = lvs["sparse"]
    assert sparse.is_sparse and sparse.is_snapshot
    assert sparse.origin == "[sparse_vorigin]" and sparse.backing is None

    pool = lvs["pool"]
    assert pool.is_thin_pool and pool.path == "" and pool.segtype == "thin-pool"
    assert pool.open and pool.data_percent == 0.0 and pool.metadata_percent == 10.94
    assert pool.devices == ("pool_tdata",)

    thin = lvs["thin1"]
    assert thin.is_thin and not thin.is_thin_snapshot and thin.pool_lv == "pool"
    assert thin.size == 128 * MiB and thin.devices == () and thin.backing is None
    assert thin.segments == (Segment(0, 128 * MiB, "thin", 0, ()),)

    tsnap = lvs["tsnap"]
    assert tsnap.is_thin_snapshot and tsnap.backing == "thin1"
    assert tsnap.skip_activation and not tsnap.active and tsnap.data_percent is None

    assert not any(lv.merging or lv.hidden for lv in lvs.values())


def test_parse_lvs_creation_time_in_utc() -> None:
    row = json.loads(LVS_JSON)["report"][0]["lv"][2]
    lvs = [dict(row, lv_uuid=str(n), lv_time=t) for n, t in enumerate(
        ("2026-11-26 05:09:41 +0000", "2026-11-26 07:09:41 +0200", "", "26/11/2026"))]
    times = [lv.created for lv in parse_lvs(json.dumps({"report": [{"lv": lvs}]}))]
    # another zone is converted; none, or lvm.conf's own time_format, is no time (no error)
    assert times == ["2026-11-26T05:09:41+00:00", "2026-11-26T05:09:41+00:00", None, None]
    assert parse_lvs(LVS_JSON)[0].created is None  # reports without the field still parse
    assert "lv_time" in lvm.LV_FIELDS


def test_parse_lvs_merges_segments_of_one_lv() -> None:
    big = next(lv for lv in parse_lvs(LVS_JSON) if lv.name == "big")
    assert big.size == 600 * MiB
    assert big.segments == (
        Segment(0, 532676608, "linear", 1, (SegmentDevice("/dev/vdb", 0),)),
        Segment(532676608, 96468992, "linear", 1, (SegmentDevice("/dev/vda", 2),)),
    )
    assert sum(s.size for s in big.segments) == big.size
    assert big.devices == ("/dev/vdb", "/dev/vda")


def test_parse_lvs_hidden() -> None:
    lvs = {lv.name: lv for lv in parse_lvs(LVS_ALL_JSON)}
    hidden = {name for name, lv in lvs.items() if lv.hidden}
    assert hidden == {"[lvol0_pmspare]", "[pool_tdata]", "[pool_tmeta]", "[sparse_vorigin]"}
    assert lvs["[sparse_vorigin]"].segtype == "zero"
    assert lvs["[pool_tdata]"].volume_type == "T"


def test_parse_lvs_striped_devices() -> None:
    row = json.loads(LVS_JSON)["report"][0]["lv"][2]
    row = dict(row, segtype="striped", stripes="2", devices="/dev/vda(0),/dev/vdb(10)")
    doc = json.dumps({"report": [{"lv": [row]}]})
    (lv,) = parse_lvs(doc)
    assert lv.segments[0].devices == (
        SegmentDevice("/dev/vda", 0),
        SegmentDevice("/dev/vdb", 10),
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"report": {}}',
        '{"report": [{"vg": []}]}',  # no "lv" list
        '{"report": [{"lv": [{"lv_name": 1}]}]}',
        '{"report": [{"lv": [{"lv_name": "x"}]}]}',  # fields missing
    ],
)
def test_parse_lvs_rejects_malformed_output(text: str) -> None:
    with pytest.raises(KvmpoolError, match="lv"):
        parse_lvs(text)


def test_parse_rejects_bad_numbers() -> None:
    bad = PVS_JSON.replace('"pv_size":"532676608"', '"pv_size":"5.3G"')
    with pytest.raises(KvmpoolError, match="pv_size"):
        parse_pvs(bad)
    bad = LVS_JSON.replace('"devices":"/dev/vda(0)"', '"devices":"/dev/vda"')
    with pytest.raises(KvmpoolError, match="devices"):
        parse_lvs(bad)


# ----------------------------------------------------------------------------- argv goldens

REPORT = ("--reportformat", "json", "--units", "b", "--nosuffix")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (lvm.pvcreate_argv(["/dev/vda", "/dev/vdb"]), ("pvcreate", "/dev/vda", "/dev/vdb")),
        (lvm.pvremove_argv(["/dev/vda"]), ("pvremove", "/dev/vda")),
        (lvm.pvremove_argv(["/dev/vda"], force=True), ("pvremove", "-ff", "--yes", "/dev/vda")),
        (lvm.vgcreate_argv("vg0", ["/dev/vda"]), ("vgcreate", "vg0", "/dev/vda")),
        (
            lvm.vgcreate_argv("vg0", ["/dev/vda", "/dev/vdb"], extent_size=MiB),
            ("vgcreate", "--physicalextentsize", "1048576b", "vg0", "/dev/vda", "/dev/vdb"),
        ),
        (lvm.vgchange_argv("vg0", active=True), ("vgchange", "-aly", "vg0")),
        (lvm.vgchange_argv("vg0", active=False), ("vgchange", "-aln", "vg0")),
        (lvm.vgremove_argv("vg0"), ("vgremove", "-f", "vg0")),
        (
            lvm.lvcreate_linear_argv("vg0", "lin", 8 * MiB),
            ("lvcreate", "--yes", "--name", "lin", "-L", "8388608b", "vg0"),
        ),
        (  # rounded up to whole sectors
            lvm.lvcreate_linear_argv("vg0", "lin", 1000),
            ("lvcreate", "--yes", "--name", "lin", "-L", "1024b", "vg0"),
        ),
        (
            lvm.lvcreate_sparse_argv("vg0", "sp", 64 * MiB, 4 * MiB),
            ("lvcreate", "--yes", "--name", "sp", "-L", "4194304b",
             "--type", "snapshot", "--virtualsize", "67108864b", "vg0"),
        ),
        (  # allocation 0: the smallest store, one sector (LVM rounds it to an extent)
            lvm.lvcreate_sparse_argv("vg0", "sp", 64 * MiB, 0),
            ("lvcreate", "--yes", "--name", "sp", "-L", "512b",
             "--type", "snapshot", "--virtualsize", "67108864b", "vg0"),
        ),
        (
            lvm.lvcreate_thin_pool_argv("vg0", "pool", 64 * MiB),
            ("lvcreate", "--yes", "--type", "thin-pool", "--name", "pool", "-L", "67108864b", "vg0"),
        ),
        (
            lvm.lvcreate_thin_pool_argv("vg0", "pool", 64 * MiB, metadata_size=4 * MiB),
            ("lvcreate", "--yes", "--type", "thin-pool", "--name", "pool", "-L", "67108864b",
             "--poolmetadatasize", "4194304b", "vg0"),
        ),
        (
            lvm.lvcreate_thin_argv("vg0", "pool", "thin1", 128 * MiB),
            ("lvcreate", "--yes", "--type", "thin", "--name", "thin1", "-V", "134217728b",
             "--thinpool", "pool", "vg0"),
        ),
        (
            lvm.lvcreate_snapshot_argv("vg0", "lin", "snap1", 4 * MiB),
            ("lvcreate", "--yes", "--snapshot", "--name", "snap1", "-L", "4194304b", "vg0/lin"),
        ),
        (
            lvm.lvcreate_thin_snapshot_argv("vg0", "thin1", "tsnap"),
            ("lvcreate", "--yes", "--snapshot", "--name", "tsnap", "vg0/thin1"),
        ),
        (
            lvm.lvcreate_thin_snapshot_argv("vg0", "thin1", "tsnap", activation_skip=False),
            ("lvcreate", "--yes", "--snapshot", "--name", "tsnap",
             "--setactivationskip", "n", "vg0/thin1"),
        ),
        (lvm.lvremove_argv("vg0", "lin"), ("lvremove", "-f", "vg0/lin")),
        (lvm.lvrename_argv("vg0", ".kvmpool-new-1f", "lin"),
         ("lvrename", "vg0", ".kvmpool-new-1f", "lin")),
        (lvm.lvresize_argv("vg0", "lin", 16 * MiB), ("lvresize", "-L", "16777216b", "vg0/lin")),
        (
            lvm.lvresize_argv("vg0", "lin", 4 * MiB, shrink=True),
            ("lvresize", "--force", "-L", "4194304b", "vg0/lin"),
        ),
        (lvm.lvconvert_merge_argv("vg0", "snap1"), ("lvconvert", "--merge", "vg0/snap1")),
        (lvm.lvchange_argv("vg0", "lin", active=False), ("lvchange", "-an", "vg0/lin")),
        (
            lvm.lvchange_argv("vg0", "tsnap", active=True, ignore_skip=True),
            ("lvchange", "-ay", "-K", "vg0/tsnap"),
        ),
        (
            lvm.pvs_argv(["/dev/vda"]),
            ("pvs", *REPORT, "-o", "pv_name,vg_name,pv_uuid,pv_size,pv_free,pv_fmt,pv_attr",
             "/dev/vda"),
        ),
        (
            lvm.vgs_argv(["vg0"]),
            ("vgs", *REPORT, "-o", "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,"
             "vg_extent_count,vg_free_count,pv_count,lv_count,vg_attr", "vg0"),
        ),
        (lvm.lvs_argv(), ("lvs", *REPORT, "-o", ",".join(lvm.LV_FIELDS))),
        (lvm.lvs_argv("vg0"), ("lvs", *REPORT, "-o", ",".join(lvm.LV_FIELDS), "vg0")),
        (
            lvm.lvs_argv("vg0", "lin", hidden=True),
            ("lvs", "-a", *REPORT, "-o", ",".join(lvm.LV_FIELDS), "vg0/lin"),
        ),
    ],
)  # fmt: skip
def test_argv_golden(argv: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert argv == expected


def test_lvs_fields_cover_the_parser() -> None:
    assert "devices" in lvm.LV_FIELDS and "seg_start" in lvm.LV_FIELDS


@pytest.mark.parametrize("name", ["-rf", "", "a b", "x/y", ".", "..", "a\nb", "é"])
def test_builders_refuse_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        lvm.lvcreate_linear_argv("vg0", name, MiB)
    with pytest.raises(InvalidArgument):
        lvm.vgremove_argv(name)


@pytest.mark.parametrize("size", [0, -512, True])
def test_builders_refuse_bad_sizes(size: int) -> None:
    with pytest.raises(InvalidArgument):
        lvm.lvcreate_linear_argv("vg0", "lin", size)


def test_builders_refuse_relative_devices_and_none() -> None:
    with pytest.raises(InvalidArgument):
        lvm.pvcreate_argv(["vda"])
    with pytest.raises(InvalidArgument):
        lvm.pvcreate_argv([])
    with pytest.raises(InvalidArgument):
        lvm.lvs_argv(None, "lin")


def test_with_config() -> None:
    argv = lvm.with_config(("lvs", "vg0"), NO_UDEV_CONFIG)
    assert argv == ("lvs", "--config", "activation { udev_sync=0 udev_rules=0 }", "vg0")
    assert lvm.with_config(("lvs",), None) == ("lvs",)


# ----------------------------------------------------------------------------- errors


def failed(stderr: str, rc: int = 5, argv: tuple[str, ...] = ("lvcreate", "x")) -> Completed:
    return Completed(argv, rc, "", stderr)


# stderr recorded in the VM for each situation
@pytest.mark.parametrize(
    ("stderr", "rc", "kind", "text"),
    [
        ('  Volume group "nosuchvg" not found\n  Cannot process volume group nosuchvg\n', 5,
         NotFound, 'Volume group "nosuchvg" not found'),
        ('  Failed to find logical volume "vg0/nosuch"\n', 5, NotFound, "Failed to find"),
        ("  No device found for /dev/vdz.\n", 5, NotFound, "/dev/vdz"),
        ('  Logical Volume "lin" already exists in volume group "vg0"\n', 5, AlreadyExists,
         "already exists"),
        ("  /dev/vg0: already exists in filesystem\n  Run `vgcreate --help' for more information.\n",
         3, AlreadyExists, "/dev/vg0"),
        ("  Logical volume vg0/lin in use.\n", 5, InUse, "in use"),
        ('  Can\'t initialize physical volume "/dev/vda" of volume group "vg0" without -ff\n'
         "  /dev/vda: physical volume not initialized.\n", 5, InUse, "of volume group"),
        ('  Logical volume name "bad name" is invalid.\n',
         3, InvalidArgument, "is invalid"),
        ("  New size (2 extents) matches existing size (2 extents).\n", 5, InvalidArgument,
         "matches existing size"),
        ("  Some option nobody knows.\n  Run `lvcreate --help' for more information.\n", 3,
         InvalidArgument, "Some option"),
    ],
)  # fmt: skip
def test_classify(stderr: str, rc: int, kind: type[KvmpoolError], text: str) -> None:
    error = classify(failed(stderr, rc))
    assert type(error) is kind
    assert text in error.message
    assert error.message.startswith("lvcreate: ")
    assert "--help" not in error.message


def test_classify_in_use_hints() -> None:
    pv = classify(
        failed('  Can\'t initialize physical volume "/dev/vda" of volume group "vg0" without -ff\n')
    )
    assert pv.hint is not None and "vgreduce" in pv.hint
    lv = classify(failed("  Logical volume vg0/lin in use.\n"))
    assert lv.hint is not None and "mounted" in lv.hint


def test_classify_no_free_space_has_a_hint() -> None:
    stderr = '  Volume group "vg0" has insufficient free space (82 extents): 2560 required.\n'
    error = classify(failed(stderr))
    assert type(error) is InvalidArgument
    assert error.message == (
        "volume group 'vg0' has too little free space: 82 free extents, 2560 needed"
    )
    assert error.hint is not None and "vgextend" in error.hint
    error = classify(failed("  Insufficient suitable allocatable extents for logical volume x\n"))
    assert type(error) is InvalidArgument and error.hint


def test_classify_unknown_is_host_command_failed() -> None:
    stderr = (
        "  WARNING: Failed to connect to lvmpolld. Proceeding.\n  device-mapper: reload failed\n"
    )
    error = classify(failed(stderr, 5, ("/sbin/lvconvert", "--merge", "vg0/s")))
    assert type(error) is HostCommandFailed
    assert error.message == "lvconvert failed: device-mapper: reload failed"
    assert error.argv == ("/sbin/lvconvert", "--merge", "vg0/s") and error.returncode == 5
    assert classify(failed("", 5)).message == "lvcreate failed: exit code 5"


def test_harmless_warnings_are_dropped() -> None:
    stderr = (
        "  /run/lvm/lvmpolld.socket: connect failed: No such file or directory\n"
        "  WARNING: Failed to connect to lvmpolld. Proceeding with polling without using lvmpolld.\n"
        "  WARNING: Check global/use_lvmpolld in lvm.conf or the lvmpolld daemon state.\n"
        "  WARNING: You have not turned on protection against thin pools running out of space.\n"
        "  WARNING: Set activation/thin_pool_autoextend_threshold below 100 to trigger automatic extension of thin pools before they get full.\n"
        "  WARNING: Sum of all thin volume sizes (384.00 MiB) exceeds the size of thin pool vg0/pool and the amount of free space in volume group (328.00 MiB).\n"
        "  Thin pool volume with chunk size 64.00 KiB can address at most <15.88 TiB of data.\n"
        "File descriptor 3 (/dev/vport1p1) leaked on lvs invocation. Parent PID 1: init\n"
        "\n"
        "  Real trouble.\n"
    )
    assert meaningful_lines(stderr) == ["Real trouble."]


# ----------------------------------------------------------------------------- Lvm


class FakeRunner(Runner):
    """Answers each program from a table of (returncode, stdout, stderr)."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None) -> Completed:
        self.calls.append((argv, timeout))
        if argv[0] not in self.answers:
            raise ToolMissing(f"'{argv[0]}' is not installed")
        rc, out, err = self.answers[argv[0]]
        return Completed(argv, rc, out, err)


def test_lvm_runs_builders_with_config_and_timeout() -> None:
    runner = FakeRunner({"lvs": (0, LVS_JSON, ""), "lvcreate": (0, "", "")})
    tool = Lvm(runner, config=NO_UDEV_CONFIG, timeout=42.0)
    tool.create_thin("vg0", "pool", "thin1", 128 * MiB)
    lvs = tool.lvs("vg0")
    assert len(lvs) == 7 and all(isinstance(lv, LogicalVolume) for lv in lvs)
    (create, t1), (report, t2) = runner.calls
    assert create[:3] == ("lvcreate", "--config", NO_UDEV_CONFIG)
    assert create[3:] == lvm.lvcreate_thin_argv("vg0", "pool", "thin1", 128 * MiB)[1:]
    assert report[:3] == ("lvs", "--config", NO_UDEV_CONFIG)
    assert t1 == t2 == 42.0


def test_lvm_merge_has_its_own_timeout() -> None:
    runner = FakeRunner({"lvconvert": (0, "", "")})
    Lvm(runner, timeout=10.0, merge_timeout=99.0).merge("vg0", "snap1")
    assert runner.calls == [(("lvconvert", "--merge", "vg0/snap1"), 99.0)]


def test_lvm_raises_classified_errors_with_the_command_as_cause() -> None:
    stderr = '  Failed to find logical volume "vg0/nosuch"\n'
    runner = FakeRunner({"lvs": (5, '{"report": [{"lv": []}]}', stderr)})
    with pytest.raises(NotFound) as info:
        Lvm(runner).lv("vg0", "nosuch")
    cause = info.value.__cause__
    assert isinstance(cause, HostCommandFailed) and cause.stderr == stderr
    assert cause.argv[0] == "lvs"


def test_lvm_vg_and_lv_not_in_report_are_not_found() -> None:
    empty_lv = '{"report": [{"lv": []}]}'
    runner = FakeRunner({"vgs": (0, VGS_EMPTY_JSON, ""), "lvs": (0, empty_lv, "")})
    with pytest.raises(NotFound, match="volume group 'vg9'"):
        Lvm(runner).vg("vg9")
    with pytest.raises(NotFound, match="logical volume 'vg0/x'"):
        Lvm(runner).lv("vg0", "x")


def test_lvm_reports_pvs_and_vgs() -> None:
    runner = FakeRunner({"pvs": (0, PVS_JSON, ""), "vgs": (0, VGS_JSON, "")})
    tool = Lvm(runner)
    assert [pv.vg for pv in tool.pvs()] == ["vg0", "vg0"]
    assert tool.vg("vg0").lv_count == 7


def test_lvm_missing_tool_names_the_package() -> None:
    with pytest.raises(ToolMissing) as info:
        Lvm(FakeRunner({})).lvremove("vg0", "lin")
    assert info.value.hint == "install it: apt-get install lvm2"


def test_lvm_dry_run_changes_nothing_but_reports_still_run() -> None:
    runner = FakeRunner({"vgs": (0, VGS_JSON, "")})
    runner.dry_run = True
    echoed: list[str] = []
    runner.echo = echoed.append
    tool = Lvm(runner)
    tool.vgremove("vg0")
    assert echoed == ["would run: vgremove -f vg0"]
    assert tool.vg("vg0").name == "vg0"
    assert [argv[0] for argv, _ in runner.calls] == ["vgs"]
