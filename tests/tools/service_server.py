"""A real ``kvmpool serve`` in a subprocess, on a free port, with its own KVMPOOL_ROOT."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, root: Path,
                 started: float) -> None:
        self.proc = proc
        self.url = url.rstrip("/")
        self.root = root
        self.start_seconds = started
        self.log: list[str] = []
        self.http = requests.Session()

    def __call__(self, method: str, path: str, json: object = None,
                 **kw: object) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        return self.http.request(method, self.url + path, json=json, headers=headers,
                                 timeout=30, **kw)  # type: ignore[arg-type]

    def wait_job(self, job: dict[str, object], timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while job["state"] == "running":
            assert time.monotonic() < deadline, f"job still running: {job}"
            time.sleep(0.05)
            job = self("GET", f"/api/jobs/{job['id']}").json()
        return job

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=20)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvmpool", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


@contextmanager
def serving(root: Path, *args: str, listen: str = "127.0.0.1:0") -> Iterator[Server]:
    env = dict(os.environ)
    env.pop("KVMPOOL_ROOT", None)
    argv = [sys.executable, "-m", "kvmpool", "--root", str(root), "serve", *args]
    if "--socket" not in args:
        argv += ["--listen", listen]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    started = time.monotonic() - t0
    m = re.search(r"listening on (\S+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"kvmpool serve did not start: {line}{proc.stderr.read()}")
    url = m.group(1)
    if url.startswith("http://0.0.0.0:") or url.startswith("http://[::]:"):
        url = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
    server = Server(proc, url, root, started)

    def drain() -> None:
        assert proc.stderr is not None
        for text in proc.stderr:
            server.log.append(text)

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield server
    finally:
        server.stop()
