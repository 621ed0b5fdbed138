"""The OpenAPI 3.0 document of the REST API, generated from the route table.

Path parameters, query parameters and request bodies come from the routes' declarations
(``kvmpool.service.schema``), so the document cannot drift from what the server checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kvmpool import __version__
from kvmpool.service.call import Route
from kvmpool.service.schema import json_schema

ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string", "description": "what failed, and why"},
                        "hint": {"type": "string", "nullable": True,
                                 "description": "what to do"}}}
JOB: dict[str, object] = {"type": "object", "properties": {
    "id": {"type": "string"}, "op": {"type": "string"}, "target": {"type": "string"},
    "state": {"type": "string", "enum": ["running", "succeeded", "failed", "cancelled"]},
    "bytes": {"type": "integer"}, "total": {"type": "integer"},
    "cancellable": {"type": "boolean"}, "result": {}, "error": {"nullable": True}}}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
POOL: dict[str, object] = {"type": "object", "description": "pool-info --json", "properties": {
    "name": _STR, "uuid": _STR, "type": _STR, "state": _STR, "active": {"type": "boolean"},
    "persistent": {"type": "boolean"}, "autostart": {"type": "boolean"},
    "capacity": _INT, "allocation": _INT, "available": _INT,
    "thin": {"type": "object", "description": "thin-bound logical pools: provisioned, "
             "data_used, data_percent, metadata_percent, pool"},
    "volumes": {"type": "integer", "nullable": True}, "supported": {"type": "boolean"},
    "target": _NSTR}}
VOLUME: dict[str, object] = {"type": "object", "description": "vol-list --json", "properties": {
    "name": _STR, "path": _NSTR, "key": _NSTR, "type": _STR, "format": _NSTR,
    "capacity": _INT, "allocation": _INT, "physical": _INT, "backing": _NSTR,
    "problem": _NSTR}}
SNAPSHOT: dict[str, object] = {"type": "object", "properties": {
    "name": _STR, "created": _NSTR, "size": {"type": "integer", "nullable": True},
    "origin": _NSTR, "fill": {"type": "number", "nullable": True},
    "valid": {"type": "boolean"}}}
SECRET: dict[str, object] = {"type": "object", "description": "never the value",
                             "properties": {"uuid": _STR, "usage_type": _NSTR,
                                            "usage_id": _NSTR, "description": _NSTR,
                                            "ephemeral": {"type": "boolean"},
                                            "private": {"type": "boolean"},
                                            "usage": _STR}}


def document(routes: Iterable[Route]) -> dict[str, object]:
    paths: dict[str, dict[str, object]] = {}
    for route in routes:
        if not route.path.startswith("/api/"):
            continue
        op: dict[str, object] = {"operationId": route.op.replace(".", "_"),
                                 "summary": route.summary, "tags": [route.tag]}
        params: list[dict[str, object]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1}}
            for name in re.findall(r"\{(\w+)\}", route.path)]
        for f in route.query:
            schema: dict[str, object] = ({"type": "boolean"} if f.kind == "boolean" else
                      {"type": "integer", "minimum": 0} if f.kind == "integer" else
                      {"type": "string"})
            params.append({"name": f.name, "in": "query", "required": False, "schema": schema})
        if params:
            op["parameters"] = params
        if route.stream_in:
            op["requestBody"] = {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}
        elif route.body is not None:
            op["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": json_schema(route.body)}}}
        responses: dict[str, object] = {}
        for status, text in route.responses.items():
            body: dict[str, object] = {}
            if status == 202:
                body = {"$ref": "#/components/schemas/Job"}
            elif route.returns:
                ref: dict[str, object] = {
                    "$ref": f"#/components/schemas/{route.returns.strip('[]')}"}
                body = {"type": "array", "items": ref} if route.returns.startswith("[") else ref
            responses[str(status)] = {"description": text, "content": {
                _ctype(route): {"schema": body}}}
        for status, text in ((400, "malformed request"), (401, "token required"),
                             (403, "refused (cross-site, wrong host)"),
                             (404, "no such pool, volume or job"),
                             (409, "state conflict (active, in use, busy)"),
                             (501, "the pool type cannot do this")):
            responses[str(status)] = {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "kvmpool", "version": __version__,
                 "description": "Storage pools and volumes of a KVM host. Errors carry the "
                                "CLI's message and hint. Long operations answer 202 with a "
                                "job: poll GET /api/jobs/{id}, cancel with DELETE."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, "Job": JOB, "Pool": POOL, "Volume": VOLUME,
                        "Snapshot": SNAPSHOT, "Secret": SECRET},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }


def _ctype(route: Route) -> str:
    if route.path.endswith("/xml"):
        return "application/xml"
    if route.path.endswith("/content") and route.method == "GET":
        return "application/octet-stream"
    return "application/json"
