"""Pool routes: the same manager calls, XML and JSON shapes as ``kvmpool pool-*``.

Bodies reuse the CLI's own builders: a pool body has ``pool-define-as``'s options (as
JSON fields) and is turned into XML by ``kvmpool.views.pool_xml``; answers are
``pool-list --json`` / ``pool-info --json`` objects (``kvmpool.views.pool_json``), plus a
volume count.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from kvmpool import caps, views, xml
from kvmpool.backends.base import Overwrite
from kvmpool.cli.main import failing
from kvmpool.errors import InUse, InvalidArgument, KvmpoolError
from kvmpool.manager import Manager
from kvmpool.model import PoolDef, PoolType
from kvmpool.service.call import Call, Reply, Route
from kvmpool.service.schema import BOOLEAN, STRINGS, Field
from kvmpool.store import PoolRecord
from kvmpool.views import pool_json

if TYPE_CHECKING:
    from kvmpool.service.app import Service

OVERWRITE = ("default", "overwrite", "no-overwrite")

POOL_FIELDS = (
    Field("xml", doc="A whole <pool> document instead of the fields below (pool-define)."),
    Field("name", doc="Name of the pool (pool-define-as --name)."),
    Field("type", enum=tuple(t.value for t in PoolType), doc="Pool type."),
    Field("target", doc="Target path (default for dir: DATA/pools/<name>)."),
    Field("source_host", doc="Source host (netfs, iscsi, rbd, gluster)."),
    Field("source_port"),
    Field("source_path", doc="Source path (netfs export, gluster dir)."),
    Field("source_dev", STRINGS, doc="Source devices (fs, disk, logical, iscsi IQN)."),
    Field("source_name", doc="Source name (volume group, rbd pool...)."),
    Field("source_format", doc="Format of the source (ext4, nfs, gpt, lvm2...)."),
    Field("auth_type", enum=("chap", "ceph")),
    Field("auth_username"),
    Field("secret_usage"),
    Field("secret_uuid"),
    Field("adapter_name"),
    Field("adapter_wwnn"),
    Field("adapter_wwpn"),
    Field("adapter_parent"),
    Field("source_protocol_ver"),
    Field("source_initiator"),
    Field("thin_pool", doc="logical: volumes are thin LVs of this thin pool (kvmpool)."),
)
BUILD_FIELDS = (Field("build", BOOLEAN, doc="Build the pool first."),
                Field("overwrite", enum=OVERWRITE, doc="How building treats existing data."))


def _overwrite(call: Call) -> Overwrite:
    return {"overwrite": Overwrite.OVERWRITE, "no-overwrite": Overwrite.NO_OVERWRITE}.get(
        call.text("overwrite") or "", Overwrite.DEFAULT)


def _build(call: Call) -> Overwrite | None:
    return _overwrite(call) if call.flag("build") or call.text("overwrite") else None


def pool_view(m: Manager, rec: PoolRecord) -> dict[str, object]:
    live = m.live_def(rec) if rec.active else None
    out = pool_json(rec, live)
    out["volumes"] = None
    out["supported"] = caps.caps(rec.current.type).has_backend
    out["target"] = rec.current.target.path
    if rec.active and out["supported"]:
        with contextlib.suppress(KvmpoolError):
            out["volumes"] = len(m.volumes(rec.name)[1])
    return out


def _pool_def(svc: Service, call: Call) -> PoolDef:
    doc = call.text("xml")
    if doc is not None:
        if set(call.body) - {"xml", "build", "overwrite"}:
            raise InvalidArgument("give either 'xml' or the pool's fields, not both")
        return xml.parse_pool(doc)
    if call.text("name") is None or call.text("type") is None:
        raise InvalidArgument("fields 'name' and 'type' are required (or 'xml')")
    o: dict[str, object] = {k: v for k, v in call.body.items() if k not in ("build",
                                                                              "overwrite")}
    o["pool_type"] = o.pop("type")
    return xml.parse_pool(views.pool_xml(svc.paths.data, o))


def list_pools(svc: Service, call: Call) -> Reply:
    m = svc.manager()
    return Reply(data=[pool_view(m, r) for r in m.records()])


def define_pool(svc: Service, call: Call) -> Reply:
    name = call.text("name") or "from xml"
    with failing(f"Failed to define pool {name}"):
        m = svc.manager()
        pool = m.define(_pool_def(svc, call))
    return Reply(201, pool_view(m, m.record(pool.name)))


def create_pool(svc: Service, call: Call) -> Reply:
    name = call.text("name") or "from xml"
    with failing(f"Failed to create pool {name}"):
        m = svc.manager()
        pool = m.create(_pool_def(svc, call), build=_build(call))
    return Reply(201, pool_view(m, m.record(pool.name)))


def get_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"failed to get pool '{pool}'"):
        m = svc.manager()
        return Reply(data=pool_view(m, m.record(pool)))


def pool_xml(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"failed to get pool '{pool}'"):
        doc = svc.manager().dumpxml(pool, inactive=call.query_flag("inactive"))
    return Reply(text=doc, content_type="application/xml")


def start_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"Failed to start pool {pool}"):
        m = svc.manager()
        rec = m.start(pool, build=_build(call))
    return Reply(data=pool_view(m, m.record(rec.name)))


def stop_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"Failed to destroy pool {pool}"):
        m = svc.manager()
        rec = m.destroy(pool)
    if not rec.persistent:  # a transient pool is gone once stopped
        return Reply(data={"name": rec.name, "uuid": rec.uuid, "type": rec.current.type.value,
                           "state": "inactive", "active": False, "persistent": False,
                           "autostart": False, "gone": True})
    return Reply(data=pool_view(m, m.record(rec.name)))


def refresh_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"Failed to refresh pool {pool}"):
        m = svc.manager()
        m.refresh(pool)
        return Reply(data=pool_view(m, m.record(pool)))


def build_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    overwrite = _overwrite(call)
    with failing(f"Failed to build pool {pool}"):
        rec = svc.manager().record(pool)

    def work(_progress: object) -> object:
        with failing(f"Failed to build pool {pool}"):
            svc.manager().build(rec.name, overwrite)
        return {"pool": rec.name}

    job = svc.jobs.start("pool.build", rec.name, 0, work, cancellable=False)
    return Reply(202, job.view(), job=True)


def delete_pool(svc: Service, call: Call) -> Reply:
    """pool-delete; with ``stop`` an active pool is stopped first, and its volumes are
    deleted first only with ``confirm_volumes`` (the page's second confirmation)."""
    pool = call.params["pool"]
    with failing(f"Failed to delete pool {pool}"):
        m = svc.manager()
        rec = m.record(pool)
        if rec.active and call.flag("stop"):
            vols = m.volumes(rec.name)[1]
            if vols and not call.flag("confirm_volumes"):
                raise InUse(f"pool '{rec.name}' holds {len(vols)} volume(s): "
                            + ", ".join(v.name for v in vols[:10]),
                            hint="send confirm_volumes: true to delete them with the pool")
            _delete_all(m, rec.name)
            m.destroy(rec.name)
        m.delete(rec.name)
        if call.flag("undefine") and rec.persistent:
            m.undefine(rec.name)
    return Reply(data={"deleted": rec.name, "undefined": call.flag("undefine")})


def _delete_all(m: Manager, pool: str) -> None:
    """Delete a pool's volumes, those that back others last."""
    while True:
        vols = m.volumes(pool)[1]
        if not vols:
            return
        progress = False
        for vol in vols:
            try:
                m.delete_volume(vol.name, pool)
                progress = True
            except InUse:
                continue
        if not progress:
            m.delete_volume(vols[0].name, pool)  # raises the InUse error for the user


def undefine_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    with failing(f"Failed to undefine pool {pool}"):
        rec = svc.manager().undefine(pool)
    return Reply(data={"undefined": rec.name})


def autostart_pool(svc: Service, call: Call) -> Reply:
    pool = call.params["pool"]
    on = call.flag("autostart")
    with failing(f"failed to {'mark' if on else 'unmark'} pool {pool} as autostarted"):
        m = svc.manager()
        rec = m.set_autostart(pool, on)
    return Reply(data=pool_view(m, m.record(rec.name)))


def capabilities(svc: Service, call: Call) -> Reply:
    return Reply(data=[{"type": t.value, "supported": caps.caps(t).has_backend,
                        "volume_formats": list(caps.caps(t).vol_formats),
                        "abilities": sorted(a.value for a in caps.caps(t).abilities)}
                       for t in PoolType])


def import_libvirt(svc: Service, call: Call) -> Reply:
    directory = call.text("dir") or "/etc/libvirt/storage"
    with failing(f"Failed to import pools from {directory}"):
        done = svc.manager().import_libvirt(directory)
    return Reply(data=[{"name": p.name, "uuid": p.uuid, "autostart": a} for p, a in done])


P = "/api/pools/{pool}"
ROUTES = (
    Route("GET", "/api/capabilities", capabilities, "caps.list",
          "Pool types, their volume formats and abilities (pool-capabilities).", tag="meta"),
    Route("GET", "/api/pools", list_pools, "pool.list",
          "All pools with state and live sizes (pool-list --all --json).", returns="[Pool]"),
    Route("POST", "/api/pools", define_pool, "pool.define",
          "Define a persistent pool (pool-define-as, or pool-define with 'xml').",
          body=POOL_FIELDS, responses={201: "defined"}, returns="Pool"),
    Route("POST", "/api/transient-pools", create_pool, "pool.create",
          "Create and start a transient pool (pool-create-as / pool-create).",
          body=POOL_FIELDS + BUILD_FIELDS, responses={201: "created"}, returns="Pool"),
    Route("POST", "/api/import-libvirt", import_libvirt, "pool.import",
          "Adopt libvirt's pool definitions (pool-import-libvirt).",
          body=(Field("dir", doc="default /etc/libvirt/storage"),)),
    Route("GET", P, get_pool, "pool.info", "A pool's state and sizes (pool-info --json).",
          returns="Pool"),
    Route("GET", P + "/xml", pool_xml, "pool.dumpxml", "A pool's XML (pool-dumpxml).",
          query=(Field("inactive", BOOLEAN),)),
    Route("DELETE", P, undefine_pool, "pool.undefine", "Forget an inactive pool's definition."),
    Route("POST", P + "/start", start_pool, "pool.start", "Start a pool (pool-start).",
          body=BUILD_FIELDS, returns="Pool"),
    Route("POST", P + "/stop", stop_pool, "pool.destroy", "Stop a pool (pool-destroy).",
          body=(), returns="Pool"),
    Route("POST", P + "/refresh", refresh_pool, "pool.refresh", "Re-read a pool's storage.",
          body=(), returns="Pool"),
    Route("POST", P + "/build", build_pool, "pool.build",
          "Build a pool (pool-build), as a job.",
          body=(Field("overwrite", enum=OVERWRITE),), responses={202: "job started"}),
    Route("POST", P + "/delete", delete_pool, "pool.delete",
          "Delete a pool's storage (pool-delete).",
          body=(Field("stop", BOOLEAN, doc="Stop an active pool first."),
                Field("confirm_volumes", BOOLEAN,
                      doc="Delete the volumes it holds too (else 409 when it holds some)."),
                Field("undefine", BOOLEAN, doc="Also forget its definition."))),
    Route("PUT", P + "/autostart", autostart_pool, "pool.autostart",
          "Turn autostart on or off (pool-autostart).",
          body=(Field("autostart", BOOLEAN, required=True),), returns="Pool"),
)
