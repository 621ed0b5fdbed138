"""kvmpool serve's REST API, started for real: the pool and volume story, jobs, refusals.

The server runs as ``python -m kvmpool --root ROOT serve`` on a free loopback port.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import tree
from tests.tools.service_server import Server, cli, serving

pytestmark = pytest.mark.tools
MiB = 1 << 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path / "root") as srv:
        yield srv


def make_pool(srv: Server, name: str, target: Path) -> None:
    r = srv("POST", "/api/pools", {"name": name, "type": "dir", "target": str(target)})
    assert r.status_code == 201, r.text
    job = srv("POST", f"/api/pools/{name}/build", {}).json()
    assert srv.wait_job(job)["state"] == "succeeded"
    r = srv("POST", f"/api/pools/{name}/start", {})
    assert r.status_code == 200, r.text


def test_starts_fast_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path / "root") as srv:
        assert srv.start_seconds < 1.5, f"took {srv.start_seconds:.2f}s to listen"
        assert srv("GET", "/api/pools").json() == []
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=10) == 0
    with serving(tmp_path / "root") as srv:
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=10) == 0


def test_pool_and_volume_story(server: Server, tmp_path: Path) -> None:
    srv, target = server, tmp_path / "images"
    make_pool(srv, "guest", target)
    pools = srv("GET", "/api/pools").json()
    assert [(p["name"], p["type"], p["state"], p["volumes"]) for p in pools] == [
        ("guest", "dir", "running", 0)]
    assert pools[0]["capacity"] >= pools[0]["allocation"] > 0

    r = srv("POST", "/api/pools/guest/volumes", {"name": "disk1", "capacity": "10M"})
    assert r.status_code == 201, r.text
    assert r.json()["capacity"] == 10 * MiB
    assert (target / "disk1").stat().st_size == 10 * MiB
    # The API's JSON is the CLI's --json, the same manager behind both.
    vols = srv("GET", "/api/pools/guest/volumes").json()
    assert vols == json.loads(cli(srv.root, "vol-list", "guest", "--json").stdout)
    info = srv("GET", "/api/pools/guest").json()
    assert {k: info[k] for k in ("name", "uuid", "state", "autostart")} == {
        k: v for k, v in json.loads(cli(srv.root, "pool-info", "guest", "--json").stdout).items()
        if k in ("name", "uuid", "state", "autostart")}
    assert "<pool type='dir'>" in srv("GET", "/api/pools/guest/xml").text

    # upload, then download through a job, byte for byte
    data = os.urandom(3 * MiB) + bytes(MiB)
    r = srv("PUT", "/api/pools/guest/volumes/disk1/content?offset=4096", data=data)
    assert r.status_code == 202, r.text
    job = srv.wait_job(r.json())
    assert job["state"] == "succeeded" and job["bytes"] == len(data) == job["total"], job
    with open(target / "disk1", "rb") as f:
        f.seek(4096)
        assert f.read(len(data)) == data
    r = srv("POST", "/api/pools/guest/volumes/disk1/download", {"offset": 4096,
                                                                "length": len(data)})
    job = srv.wait_job(r.json())
    assert job["state"] == "succeeded", job
    content = srv("GET", job["result"]["content"])  # type: ignore[index]
    assert content.status_code == 200 and content.content == data
    assert srv("GET", job["result"]["content"]).status_code == 409  # type: ignore[index]

    # clone as a job, with progress bytes
    r = srv("POST", "/api/pools/guest/volumes/disk1/clone", {"newname": "disk2"})
    assert r.status_code == 202, r.text
    job = srv.wait_job(r.json())
    assert job["state"] == "succeeded" and job["total"] == 10 * MiB, job
    assert (target / "disk2").read_bytes() == (target / "disk1").read_bytes()

    r = srv("POST", "/api/pools/guest/volumes/disk2/resize", {"capacity": "20M"})
    assert r.status_code == 200 and r.json()["capacity"] == 20 * MiB, r.text
    r = srv("POST", "/api/pools/guest/volumes/disk2/resize", {"capacity": "5M"})
    assert r.status_code == 400
    assert "shrink" in r.json()["error"] and r.json()["hint"]

    job = srv.wait_job(srv("POST", "/api/pools/guest/volumes/disk2/wipe", {}).json())
    assert job["state"] == "succeeded", job
    assert (target / "disk2").read_bytes() == bytes(20 * MiB)

    # qcow2 with a snapshot
    r = srv("POST", "/api/pools/guest/volumes", {"name": "q", "capacity": 1 << 30,
                                                 "format": "qcow2"})
    assert r.status_code == 201 and r.json()["format"] == "qcow2", r.text
    assert srv("POST", "/api/pools/guest/volumes/q/snapshots", {"name": "s1"}).status_code == 201
    snaps = srv("GET", "/api/pools/guest/volumes/q/snapshots").json()
    assert [s["name"] for s in snaps] == ["s1"]
    assert srv("POST", "/api/pools/guest/volumes/q/snapshots/s1/revert", {}).status_code == 200
    assert srv("DELETE", "/api/pools/guest/volumes/q/snapshots/s1").status_code == 200
    r = srv("POST", "/api/pools/guest/volumes/disk1/snapshots", {"name": "s"})
    assert r.status_code == 501 and "cannot snapshot raw volumes" in r.json()["error"]

    # a pool with volumes is deleted only with the second confirmation
    before = tree(target)
    r = srv("POST", "/api/pools/guest/delete", {"stop": True})
    assert r.status_code == 409 and "holds 3 volume(s)" in r.json()["error"], r.text
    assert tree(target) == before and srv("GET", "/api/pools/guest").json()["active"]
    for name in ("disk1", "disk2"):
        assert srv("DELETE", f"/api/pools/guest/volumes/{name}").status_code == 200
    assert [v["name"] for v in srv("GET", "/api/pools/guest/volumes").json()] == ["q"]
    r = srv("POST", "/api/pools/guest/delete", {"stop": True, "confirm_volumes": True,
                                                "undefine": True})
    assert r.status_code == 200, r.text
    assert not target.exists()
    assert srv("GET", "/api/pools").json() == []
    assert json.loads(cli(srv.root, "pool-list", "--all", "--json").stdout) == []


def test_lifecycle_verbs(server: Server, tmp_path: Path) -> None:
    srv = server
    make_pool(srv, "p", tmp_path / "p")
    r = srv("PUT", "/api/pools/p/autostart", {"autostart": True})
    assert r.status_code == 200 and r.json()["autostart"] is True
    assert srv("POST", "/api/pools/p/refresh", {}).status_code == 200
    r = srv("DELETE", "/api/pools/p")
    assert r.status_code == 409
    assert r.json()["hint"] == "stop it first: kvmpool pool-destroy p"
    assert srv("POST", "/api/pools/p/stop", {}).json()["state"] == "inactive"
    assert srv("POST", "/api/pools/p/delete", {}).status_code == 200
    assert srv("DELETE", "/api/pools/p").status_code == 200
    caps = {c["type"]: c for c in srv("GET", "/api/capabilities").json()}
    assert caps["dir"]["supported"] and "qcow2" in caps["dir"]["volume_formats"]
    xml = f"<pool type='dir'><name>x</name><target><path>{tmp_path}/x</path></target></pool>"
    r = srv("POST", "/api/transient-pools", {"xml": xml, "build": True})
    assert r.status_code == 201 and r.json()["persistent"] is False, r.text
    assert srv("POST", "/api/pools/x/stop", {}).status_code == 200
    assert srv("GET", "/api/pools").json() == []
    # pool-define-as's options as fields, the same XML as the CLI builds
    fields = {"name": "san", "type": "iscsi", "source_host": "10.0.0.5",
              "source_dev": ["iqn.2024-01.org.example:disks"], "target": "/dev/disk/by-path",
              "auth_type": "chap", "auth_username": "admin", "secret_usage": "libvirtiscsi"}
    assert srv("POST", "/api/pools", fields).status_code == 201
    out = cli(srv.root, "pool-define-as", "san2", "iscsi", "--source-host", "10.0.0.5",
              "--source-dev", "iqn.2024-01.org.example:disks", "--target", "/dev/disk/by-path",
              "--auth-type", "chap", "--auth-username", "admin", "--secret-usage",
              "libvirtiscsi", "--print-xml")
    api_xml = srv("GET", "/api/pools/san/xml").text
    assert "<auth type='chap' username='admin'>" in api_xml
    assert "<auth type='chap' username='admin'>" in out.stdout


def test_errors_carry_the_cli_message_and_hint(server: Server) -> None:
    r = server("POST", "/api/pools/nope/start", {})
    assert r.status_code == 404
    out = cli(server.root, "pool-start", "nope")
    assert out.stderr.strip() == f"error: {r.json()['error']} (hint: {r.json()['hint']})"
    r = server("GET", "/api/pools/nope/volumes/v")
    assert r.status_code == 404 and r.json()["error"].startswith("failed to get vol 'v'")
    r = server("GET", "/api/nothing-here")
    assert r.status_code == 404 and "openapi" in r.json()["hint"]
    r = server("PATCH", "/api/pools")
    assert r.status_code == 405
    # a body nobody reads would be taken for the next request: the connection is closed
    r = server("GET", "/api/pools", data=b"GET /api/evil HTTP/1.1\r\n\r\n")
    assert r.status_code == 400 and r.headers.get("Connection") == "close"
    assert server("GET", "/api/pools").status_code == 200


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    (b'{"name": "x", "type": "dir", "colour": "red"}', "application/json", 400,
     "unknown field 'colour'"),
    (b'{"name": 5, "type": "dir"}', "application/json", 400, "field 'name' must be a string"),
    (b'{"name": "a\\u0000b", "type": "dir"}', "application/json", 400, "NUL"),
    (b'{"name": "x", "type": "floppy"}', "application/json", 400, "must be one of"),
    (b'{"name": "x"}', "application/json", 400, "'name' and 'type' are required"),
    (b'{"name": "a/b", "type": "dir"}', "application/json", 400, "name"),
    (b'{"xml": "<pool type=\'dir\'><name>x</name>"}', "application/json", 400, ""),
    (b'{"name": "x", "type": "dir"}', "text/plain", 415, "application/json"),
])
def test_malformed_bodies_are_refused_and_change_nothing(
        server: Server, body: bytes, content_type: str, status: int, message: str) -> None:
    before = tree(server.root)
    r = server("POST", "/api/pools", data=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert tree(server.root) == before


def test_malformed_volume_bodies(server: Server, tmp_path: Path) -> None:
    make_pool(server, "g", tmp_path / "g")
    before = tree(tmp_path / "g")
    for body, message in [({"name": "v", "capacity": "10Q"}, "Malformed size"),
                          ({"name": "v", "capacity": -1}, "must be a size"),
                          ({"name": "v", "capacity": True}, "must be a size"),
                          ({"name": "..", "capacity": 1}, ".."),
                          ({"name": "v"}, "required"),
                          ({"name": "v", "capacity": 1, "format": "floppy"}, "floppy")]:
        r = server("POST", "/api/pools/g/volumes", body)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert message in r.json()["error"], (body, r.json())
    r = server("POST", "/api/pools/g/volumes/v/clone", {})
    assert r.status_code == 400 and "newname" in r.json()["error"]
    r = server("PUT", "/api/pools/g/volumes/v/content?offset=x", data=b"12")
    assert r.status_code == 400
    assert tree(tmp_path / "g") == before


def test_cross_site_requests_are_refused(server: Server) -> None:
    before = tree(server.root)
    body = {"name": "evil", "type": "dir"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        r = server("POST", "/api/pools", body, headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert "cross-site" in r.json()["error"]
    # a form post (no JSON content type, as a cross-site form must send)
    r = server("POST", "/api/pools", data="name=evil&type=dir",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    # DNS rebinding: a foreign name resolving to 127.0.0.1 is refused, reads too
    port = server.url.rsplit(":", 1)[1]
    r = server("GET", "/api/pools", headers={"Host": f"evil.example:{port}"})
    assert r.status_code == 403
    r = server("POST", "/api/pools", body, headers={"Host": f"evil.example:{port}",
                                                     "Origin": f"http://evil.example:{port}"})
    assert r.status_code == 403
    assert tree(server.root) == before
    # the page's own origin is fine
    r = server("POST", "/api/pools", body, headers={"Origin": server.url})
    assert r.status_code == 201, r.text


def test_non_loopback_needs_the_token(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serving(root, listen="0.0.0.0:0") as srv:
        token_file = root / "config" / "service-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        before = tree(root)
        assert srv("GET", "/api/pools").status_code == 401
        assert srv("GET", "/metrics").status_code == 401
        r = srv("POST", "/api/pools", {"name": "x", "type": "dir"})
        assert r.status_code == 401 and r.json()["hint"]
        r = srv("POST", "/api/pools", {"name": "x", "type": "dir"},
                headers={"Authorization": "Bearer wrong-token"})
        assert r.status_code == 401
        assert tree(root) == before
        assert srv("GET", "/api/session").json() == {"auth_required": True,
                                                     "authenticated": False}
        auth = {"Authorization": f"Bearer {token}"}
        assert srv("GET", "/api/pools", headers=auth).json() == []
        r = srv("POST", "/api/pools", {"name": "x", "type": "dir"}, headers=auth)
        assert r.status_code == 201, r.text
        # the page's login: a cookie, which then needs the CSRF header on changes
        assert srv("POST", "/api/session", {"token": "nope"}).status_code == 401
        r = srv("POST", "/api/session", {"token": token})
        assert r.status_code == 200 and "SameSite=Strict" in r.headers["Set-Cookie"]
        assert srv("GET", "/api/pools").status_code == 200
        assert srv("DELETE", "/api/pools/x").status_code == 403
        assert srv("DELETE", "/api/pools/x", headers={"X-Kvmpool-CSRF": "1"}).status_code == 200
    # the same token on the next start
    with serving(root, listen="0.0.0.0:0"):
        assert (root / "config" / "service-token").read_text().strip() == token


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "kvmpool.sock"
    with serving(tmp_path / "root", "--socket", str(path)) as srv:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        conn.request("GET", "/api/pools")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == []
        conn.close()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=10) == 0
    assert not path.exists()


def test_job_progress_and_cancel(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "g"
    make_pool(server, "g", target)
    assert server("POST", "/api/pools/g/volumes", {"name": "v", "capacity": "64M"}).ok
    # An upload sent slowly: its job is seen running with its bytes, then cancelled.
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("PUT", "/api/pools/g/volumes/v/content")
    conn.putheader("Content-Length", str(64 * MiB))
    conn.endheaders()
    conn.send(b"\x01" * (8 * MiB))
    deadline = time.monotonic() + 20
    while True:
        jobs = [j for j in server("GET", "/api/jobs").json() if j["op"] == "volume.upload"]
        if jobs and jobs[0]["bytes"] >= 8 * MiB:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.05)
    job = jobs[0]
    assert job["state"] == "running" and job["total"] == 64 * MiB and job["cancellable"]
    r = server("DELETE", f"/api/jobs/{job['id']}")
    assert r.status_code == 200
    with contextlib.suppress(OSError):  # the next chunk meets the cancelled callback
        conn.send(b"\x01" * MiB)
    job = server.wait_job(server("GET", f"/api/jobs/{job['id']}").json())
    assert job["state"] == "cancelled", job
    assert 8 * MiB <= job["bytes"] < 64 * MiB
    conn.close()
    assert server("DELETE", "/api/jobs/nope").status_code == 404
    # metrics count the cancelled job as a failed upload
    families = {f.name: f for f in text_string_to_metric_families(server("GET", "/metrics").text)}
    failures = {s.labels["op"]: s.value for s in
                families["kvmpool_operation_failures"].samples}
    assert failures["volume.upload"] == 1


def test_metrics_parse(server: Server, tmp_path: Path) -> None:
    make_pool(server, "m", tmp_path / "m")
    assert server("POST", "/api/pools/m/volumes", {"name": "v", "capacity": "1M"}).ok
    assert server("POST", "/api/pools/nope/start", {}).status_code == 404
    r = server("GET", "/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = [s for f in families.values() for s in f.samples]

    def value(name: str, **labels: str) -> float:
        for s in samples:
            if all(s.labels.get(k) == v for k, v in labels.items()) and s.name == name:
                return float(s.value)
        raise AssertionError(f"no {name} {labels}")

    assert value("kvmpool_pool_active", pool="m", type="dir") == 1
    assert value("kvmpool_pool_volumes", pool="m") == 1
    assert value("kvmpool_pool_capacity_bytes", pool="m") > 0
    assert value("kvmpool_pool_available_bytes", pool="m") > 0
    assert families["kvmpool_pool_thin_data_percent"].type == "gauge"
    assert value("kvmpool_operations_total", op="pool.define") == 1
    assert value("kvmpool_operations_total", op="pool.build") == 1
    assert value("kvmpool_operations_total", op="pool.start") == 2
    assert value("kvmpool_operation_failures_total", op="pool.start") == 1
    assert value("kvmpool_operation_duration_seconds_count", op="volume.create") == 1


def test_openapi_and_page(server: Server) -> None:
    doc = server("GET", "/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/pools", "/api/pools/{pool}/volumes/{vol}/clone", "/api/jobs/{job}",
                 "/api/capabilities", "/api/pools/{pool}/volumes/{vol}/snapshots"):
        assert path in doc["paths"]
    page = server("GET", "/")
    assert page.status_code == 200 and "<title>kvmpool" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in ("/static/main.js", "/static/util.js", "/static/pools.js",
                  "/static/volumes.js", "/static/jobs.js", "/static/style.css"):
        assert server("GET", asset).status_code == 200
    assert server("GET", "/static/../app.py").status_code == 404
    assert server("GET", "/static/nope.js").status_code == 404


def test_secrets_without_values_and_discovery(server: Server) -> None:
    uuid = "6b0d5b4e-8f8a-4d4e-9a57-0c3f0f5c0b11"
    doc = (f"<secret ephemeral='no' private='yes'><uuid>{uuid}</uuid>"
           "<usage type='iscsi'><target>libvirtiscsi</target></usage></secret>")
    r = server("POST", "/api/secrets", {"xml": doc})
    assert r.status_code == 201, r.text
    listed = server("GET", "/api/secrets").json()
    assert [s["uuid"] for s in listed] == [uuid]
    assert listed[0]["usage"] == "iscsi libvirtiscsi"
    assert not any("value" in key for key in listed[0])
    assert "<uuid>" in server("GET", f"/api/secrets/{uuid}/xml").text
    assert server("GET", "/api/secrets/nope").status_code == 404
    assert server("POST", "/api/secrets", {"xml": "<secret>"}).status_code == 400
    assert server("DELETE", f"/api/secrets/{uuid}").status_code == 200
    assert server("GET", "/api/secrets").json() == []
    r = server("POST", "/api/discover", {"type": "netfs"})
    assert r.status_code == 400 and "hostname must be specified" in r.json()["error"]
    assert server("POST", "/api/discover", {"type": "dir"}).status_code == 400
