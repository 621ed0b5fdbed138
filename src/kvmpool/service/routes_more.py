"""Secrets (definitions only: their values never leave kvmpool through the API) and pool
source discovery, as ``kvmpool secret-*`` and ``find-storage-pool-sources-as`` do them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmpool import discovery, xml
from kvmpool.cli.main import failing
from kvmpool.cli.output import jsonable
from kvmpool.errors import InvalidArgument
from kvmpool.host.run import Runner
from kvmpool.model import PoolSource, PoolType, SourceHost
from kvmpool.secrets import SecretDef, SecretStore, format_secret, parse_secret
from kvmpool.service.call import Call, Reply, Route
from kvmpool.service.schema import INTEGER, Field

if TYPE_CHECKING:
    from kvmpool.service.app import Service


def _secret(s: SecretDef) -> dict[str, object]:
    out: dict[str, object] = jsonable(s)
    out["usage"] = s.usage
    return out


def list_secrets(svc: Service, call: Call) -> Reply:
    return Reply(data=[_secret(s) for s in SecretStore(svc.paths).list()])


def get_secret(svc: Service, call: Call) -> Reply:
    uuid = call.params["secret"]
    with failing(f"failed to get secret '{uuid}'"):
        return Reply(data=_secret(SecretStore(svc.paths).get(uuid)))


def secret_xml(svc: Service, call: Call) -> Reply:
    uuid = call.params["secret"]
    with failing(f"failed to get secret '{uuid}'"):
        found = SecretStore(svc.paths).get(uuid)
    return Reply(text=format_secret(found), content_type="application/xml")


def define_secret(svc: Service, call: Call) -> Reply:
    with failing("Failed to set attributes from xml"):
        secret = SecretStore(svc.paths).define(parse_secret(call.text("xml") or ""))
    return Reply(201, _secret(secret))


def undefine_secret(svc: Service, call: Call) -> Reply:
    uuid = call.params["secret"]
    with failing(f"Failed to delete secret {uuid}"):
        found = SecretStore(svc.paths).undefine(uuid)
    return Reply(data={"deleted": found.uuid})


def discover(svc: Service, call: Call) -> Reply:
    """find-storage-pool-sources-as: NFS exports, iSCSI targets, volume groups."""
    name = call.text("type") or ""
    with failing(f"Failed to find any {name} pool sources"):
        try:
            pool_type = PoolType(name)
        except ValueError:
            raise InvalidArgument(f"unknown storage pool type '{name}'") from None
        host = call.text("host")
        port = call.number("port")
        if port is not None and port > 65535:
            raise InvalidArgument("port must be at most 65535")
        spec = PoolSource(hosts=(SourceHost(host, port),) if host else (),
                          initiator_iqn=call.text("initiator"))
        sources = discovery.find_sources(pool_type, spec, Runner(dry_run=svc.dry_run))
    return Reply(data={"sources": jsonable(sources),
                       "xml": xml.format_sources(sources, pool_type)})


S = "/api/secrets/{secret}"
ROUTES = (
    Route("GET", "/api/secrets", list_secrets, "secret.list",
          "Secrets (secret-list --json); values are never shown.", tag="secrets",
          returns="[Secret]"),
    Route("POST", "/api/secrets", define_secret, "secret.define",
          "Define a secret from its XML (secret-define); its value is set with the CLI.",
          tag="secrets", body=(Field("xml", required=True),), responses={201: "defined"},
          returns="Secret"),
    Route("GET", S, get_secret, "secret.info", "A secret's definition.", tag="secrets",
          returns="Secret"),
    Route("GET", S + "/xml", secret_xml, "secret.dumpxml", "A secret's XML.", tag="secrets"),
    Route("DELETE", S, undefine_secret, "secret.undefine", "Forget a secret and its value.",
          tag="secrets"),
    Route("POST", "/api/discover", discover, "pool.discover",
          "The pool sources a host offers (find-storage-pool-sources-as): NFS exports, "
          "iSCSI targets, the volume groups here.", tag="pools",
          body=(Field("type", required=True, enum=("netfs", "logical", "iscsi",
                                                   "iscsi-direct")),
                Field("host"), Field("port", INTEGER), Field("initiator"))),
)
