"""What the CLI and the service both show: pool and volume JSON objects, and the XML
that ``pool-define-as`` and ``vol-create-as`` build from their options.

One place, so that ``kvmpool vol-list --json`` and ``GET /api/pools/P/volumes`` can never
drift apart.
"""

from __future__ import annotations

import os

from kvmpool import xml
from kvmpool.errors import VolumeNotFound
from kvmpool.manager import Manager
from kvmpool.model import PoolDef, PoolState, PoolType, VolumeDef
from kvmpool.store import PoolRecord
from kvmpool.xml.ext import KVMPOOL_NS


def jsonable_thin(pool: PoolDef) -> dict[str, object]:
    assert pool.thin is not None
    t = pool.thin
    return {"provisioned": t.provisioned, "data_used": t.data_used,
            "data_percent": t.data_percent, "metadata_percent": t.metadata_percent,
            "pool": pool.thin_pool}


def pool_xml(data_dir: str, o: dict[str, object]) -> str:
    """The XML virsh's pool-define-as builds from its options (same elements, same order)."""

    def a(value: object) -> str:
        return "'" + xml.escape(str(value)) + "'"

    def s(key: str) -> str | None:
        value = o.get(key)
        return str(value) if value else None

    pool_type = s("pool_type") or ""
    target = s("target")
    if target is None and pool_type == PoolType.DIR:
        target = os.path.join(data_dir, "pools", str(o["name"]))
    lines = [f"<pool type={a(pool_type)}>", f"  <name>{xml.escape(str(o['name']))}</name>"]
    src: list[str] = []
    if s("source_host"):
        port = f" port={a(s('source_port'))}" if s("source_port") else ""
        src.append(f"<host name={a(s('source_host'))}{port}/>")
    if s("source_path"):
        src.append(f"<dir path={a(s('source_path'))}/>")
    for dev in o.get("source_dev") or ():  # type: ignore[attr-defined]
        src.append(f"<device path={a(dev)}/>")
    if s("adapter_wwnn") and s("adapter_wwpn"):
        attrs = "".join(
            f" {k}={a(s(opt))}"
            for k, opt in (("parent", "adapter_parent"), ("parent_wwnn", "adapter_parent_wwnn"),
                           ("parent_wwpn", "adapter_parent_wwpn"),
                           ("parent_fabric_wwn", "adapter_parent_fabric_wwn"))
            if s(opt)
        )
        src.append(f"<adapter type='fc_host'{attrs} wwnn={a(s('adapter_wwnn'))} "
                   f"wwpn={a(s('adapter_wwpn'))}/>")
    elif s("adapter_name"):
        src.append(f"<adapter type='scsi_host' name={a(s('adapter_name'))}/>")
    if s("source_initiator"):
        src += ["<initiator>", f"  <iqn name={a(s('source_initiator'))}/>", "</initiator>"]
    if s("auth_type") and s("auth_username") and (s("secret_usage") or s("secret_uuid")):
        secret = (f"<secret usage={a(s('secret_usage'))}/>" if s("secret_usage")
                  else f"<secret uuid={a(s('secret_uuid'))}/>")
        src += [f"<auth type={a(s('auth_type'))} username={a(s('auth_username'))}>",
                f"  {secret}", "</auth>"]
    if s("source_format"):
        src.append(f"<format type={a(s('source_format'))}/>")
    if s("source_name"):
        src.append(f"<name>{xml.escape(s('source_name') or '')}</name>")
    if s("source_protocol_ver"):
        src.append(f"<protocol ver={a(s('source_protocol_ver'))}/>")
    if src:
        lines += ["  <source>", *("    " + x for x in src), "  </source>"]
    if target:
        lines += ["  <target>", f"    <path>{xml.escape(target)}</path>", "  </target>"]
    if s("thin_pool"):
        lines[0] = lines[0][:-1] + f" xmlns:kvmpool={a(KVMPOOL_NS)}>"
        lines.append(f"  <kvmpool:thinpool name={a(s('thin_pool'))}/>")
    lines.append("</pool>")
    return "\n".join(lines) + "\n"


def pool_state(rec: PoolRecord, details: bool) -> str:
    if not details:
        return "active" if rec.active else "inactive"
    return PoolState.RUNNING if rec.active else PoolState.INACTIVE


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def pool_json(rec: PoolRecord, live: PoolDef | None) -> dict[str, object]:
    out: dict[str, object] = {
        "name": rec.name, "uuid": rec.uuid, "type": rec.current.type.value,
        "state": pool_state(rec, True), "active": rec.active,
        "persistent": rec.persistent, "autostart": rec.autostart,
    }
    if isinstance(live, PoolDef):
        out.update(capacity=live.capacity, allocation=live.allocation, available=live.available)
        if live.thin is not None:
            out["thin"] = jsonable_thin(live)
    return out


def _attr(value: str) -> str:
    return "'" + xml.escape(value) + "'"


def vol_xml(name: str, capacity: int, allocation: int | None, fmt: str | None,
            backing: str | None, backing_format: str | None) -> str:
    """The XML virsh's vol-create-as builds (capacity in plain bytes), kept schema-valid."""
    lines = ["<volume>", f"  <name>{xml.escape(name)}</name>",
             f"  <capacity>{capacity}</capacity>"]
    if allocation is not None:
        lines.append(f"  <allocation>{allocation}</allocation>")
    if fmt:
        lines += ["  <target>", f"    <format type={_attr(fmt)}/>", "  </target>"]
    else:
        lines.append("  <target/>")  # virsh omits it, but libvirt's schema requires it
    if backing:
        lines += ["  <backingStore>", f"    <path>{xml.escape(backing)}</path>"]
        if backing_format:
            lines.append(f"    <format type={_attr(backing_format)}/>")
        lines.append("  </backingStore>")
    lines.append("</volume>")
    return "\n".join(lines) + "\n"


def backing_volume(manager: Manager, pool: str, spec: str) -> tuple[str, str | None]:
    """virsh resolves --backing-vol as a volume: a name in the pool, else a key or path."""
    try:
        _, vol = manager.volume(spec, pool)
    except VolumeNotFound:
        if not spec.startswith("/"):
            raise
        _, vol = manager.volume(spec)
    assert vol.target.path is not None
    return vol.target.path, vol.target.format


def vol_allocation(vol: VolumeDef) -> int:
    return vol.capacity or 0 if vol.allocation is None else vol.allocation


def vol_json(vol: VolumeDef) -> dict[str, object]:
    return {"name": vol.name, "path": vol.target.path, "key": vol.key, "type": vol.type.value,
            "format": vol.target.format, "capacity": vol.capacity,
            "allocation": vol_allocation(vol), "physical": vol.physical,
            "backing": vol.backing_store.path if vol.backing_store else None,
            "problem": vol.problem}
