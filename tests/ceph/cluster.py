"""A real single-host Ceph cluster for tests: 1 mon, 1 mgr, 1 bluestore OSD on 127.0.0.1.

Built from Debian's own packages (ceph-mon, ceph-osd, ceph-mgr, ceph-common, python3-rados),
everything under one temporary directory: the OSD's disk is a sparse file (bluestore creates
it), keyrings, logs, sockets and data live there too, nothing is written under /etc/ceph or
/var/lib/ceph. The monitor listens on two free ports picked at start, so a cluster another
job runs on this machine is never touched.

``Cluster.up()`` returns when health is HEALTH_OK and every PG is active+clean (bounded), with
pool ``rbd`` initialised and a restricted user ``client.kvmpool`` (``profile rbd`` on that
pool). ``down()`` stops the daemons (OSD, then mgr, then mon; SIGKILL after a grace) and
removes the directory; it signals only processes whose command line carries this cluster's
own ``-c <conf>``. Daemons also get SIGKILL if the process that started them dies
(PR_SET_PDEATHSIG), so even a killed test run leaves none behind.

As a script (``CMD`` runs with ``CEPH_CONF`` and ``KVMPOOL_CEPH_KEY`` exported; the cluster is
torn down when it ends, whatever happens)::

    /usr/bin/python3 tests/ceph/cluster.py [--keep-dir] -- CMD [ARGS...]
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BINARIES = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-authtool", "monmaptool")
POOL = "rbd"
USER = "kvmpool"
PR_SET_PDEATHSIG = 1


def missing() -> list[str]:
    """What this machine lacks to run a cluster (binaries, the python bindings)."""
    gone = [b for b in BINARIES if shutil.which(b) is None]
    for mod in ("rados", "rbd"):
        try:
            __import__(mod)
        except ImportError:
            gone.append(f"python3-{mod}")
    return gone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ClusterError(RuntimeError):
    pass


class Cluster:
    def __init__(self, base: str | None = None, *, osd_size_gib: int = 10) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kvmpool-ceph-", dir=base))
        self.conf = self.dir / "ceph.conf"
        self.fsid = str(uuid.uuid4())
        self.v2 = _free_port()
        self.v1 = _free_port()
        while self.v1 == self.v2:
            self.v1 = _free_port()
        self.osd_size_gib = osd_size_gib
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.user = USER
        self.user_key = ""
        self.admin_key = ""
        self._admin: Any = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------ facts for clients

    @property
    def mon_host(self) -> str:
        return f"127.0.0.1:{self.v1}"

    @property
    def env(self) -> dict[str, str]:
        return {"CEPH_CONF": str(self.conf)}

    # ------------------------------------------------------------ helpers

    def _run(self, *argv: str) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def _spawn(self, name: str, *argv: str) -> None:
        log = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115 - kept by the child
        with log:
            self.procs[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent)

    def _write_conf(self) -> None:
        d = self.dir
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon host = [v2:127.0.0.1:{self.v2},v1:127.0.0.1:{self.v1}]
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keyring/$name.keyring
run dir = {d}/run
crash dir = {d}/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
mon data avail warn = 0
mon data avail crit = 0
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728

[mon]
mon data = {d}/mon/$cluster-$id
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log

[mgr]
mgr data = {d}/mgr/$cluster-$id
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log

[osd]
osd data = {d}/osd/$cluster-$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {self.osd_size_gib << 30}
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
""")

    def admin(self) -> Any:
        """A librados connection as client.admin (kept open until ``down``)."""
        if self._admin is None:
            import rados

            conn = rados.Rados(conffile=str(self.conf), rados_id="admin",
                               conf={"client_mount_timeout": "15",
                                     "rados_mon_op_timeout": "30"})
            conn.connect()
            self._admin = conn
        return self._admin

    def mon(self, prefix: str, inbuf: bytes = b"", **args: Any) -> Any:
        """A monitor command as JSON (``ceph <prefix> ... -f json``)."""
        cmd = {"prefix": prefix, "format": "json", **args}
        ret, out, err = self.admin().mon_command(json.dumps(cmd), inbuf, timeout=30)
        if ret != 0:
            raise ClusterError(f"mon command {prefix} failed ({ret}): {err}")
        return json.loads(out) if out.strip() else None

    def mgr(self, prefix: str, **args: Any) -> Any:
        cmd = {"prefix": prefix, "format": "json", **args}
        ret, out, err = self.admin().mgr_command(json.dumps(cmd), b"", timeout=30)
        if ret != 0:
            raise ClusterError(f"mgr command {prefix} failed ({ret}): {err}")
        return json.loads(out) if out.strip() else None

    def _wait(self, what: str, test: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if test():
                    return
            except Exception as err:
                last = err
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:g} s waiting for {what}"
                           + (f" (last error: {last})" if last else "")
                           + f"; logs in {self.dir}/log")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.dir / f"{name}.out").read_text(errors="replace")[-1500:]
                raise ClusterError(f"{name} exited with {proc.returncode}: {tail}")

    # ------------------------------------------------------------ up

    def up(self, timeout: float = 180) -> Cluster:
        t0 = time.monotonic()
        try:
            self._up(t0 + timeout)
        except BaseException:
            if not os.environ.get("KVMPOOL_CEPH_DEBUG"):
                self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        return self

    def _up(self, deadline: float) -> None:
        d = self.dir
        for sub in ("keyring", "run", "crash", "log", "mon", "mgr", "osd"):
            (d / sub).mkdir()
        self._write_conf()
        kr = d / "keyring"
        mon_kr, admin_kr = kr / "mon..keyring", kr / "client.admin.keyring"
        self._run("ceph-authtool", "--create-keyring", str(mon_kr), "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *")
        self._run("ceph-authtool", "--create-keyring", str(admin_kr), "--gen-key",
                  "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                  "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        self._run("ceph-authtool", str(mon_kr), "--import-keyring", str(admin_kr))
        monmap = d / "monmap"
        self._run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{self.v2},v1:127.0.0.1:{self.v1}]", str(monmap))
        conf = str(self.conf)
        self._run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(monmap),
                  "--keyring", str(mon_kr))
        self._spawn("mon.a", "ceph-mon", "-c", conf, "-i", "a", "-f")
        self._wait("the monitor", lambda: self.mon("mon stat") is not None,
                   max(1.0, deadline - time.monotonic()))
        self.timings["mon"] = time.monotonic()

        mgr_dir = d / "mgr" / "ceph-x"
        mgr_dir.mkdir()
        self._keyring_for("mgr.x", ["mon", "allow profile mgr", "osd", "allow *",
                                    "mds", "allow *"], kr / "mgr.x.keyring")
        self._spawn("mgr.x", "ceph-mgr", "-c", conf, "-i", "x", "-f")

        osd_uuid = str(uuid.uuid4())
        osd_id = int(self.mon("osd new", uuid=osd_uuid)["osdid"])
        name = f"osd.{osd_id}"
        osd_kr = kr / f"{name}.keyring"
        self._run("ceph-authtool", "--create-keyring", str(osd_kr), "--gen-key", "-n", name)
        self.mon("auth add", inbuf=osd_kr.read_bytes(), entity=name,
                 caps=["osd", "allow *", "mon", "allow profile osd", "mgr", "allow profile osd"])
        (d / "osd" / f"ceph-{osd_id}").mkdir()
        self._run("ceph-osd", "-c", conf, "-i", str(osd_id), "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn(name, "ceph-osd", "-c", conf, "-i", str(osd_id), "-f")
        self._wait("the OSD to come up", lambda: self.mon("osd stat")["num_up_osds"] >= 1,
                   max(1.0, deadline - time.monotonic()))
        self.timings["osd"] = time.monotonic()

        self.mon("osd pool create", pool=POOL, pg_num=8, pgp_num=8)
        self.mon("osd pool set", pool=POOL, var="size", val="1", yes_i_really_mean_it=True)
        import rbd

        with self.admin().open_ioctx(POOL) as ioctx:
            rbd.RBD().pool_init(ioctx, True)
        made = self.mon("auth get-or-create", entity=f"client.{USER}",
                        caps=["mon", "profile rbd", "osd", f"profile rbd pool={POOL}",
                              "mgr", f"profile rbd pool={POOL}"])
        self.user_key = made[0]["key"]
        user_kr = kr / f"client.{USER}.keyring"  # for qemu-img/rbd with CEPH_CONF and --id
        user_kr.write_text(f"[client.{USER}]\n\tkey = {self.user_key}\n")
        user_kr.chmod(0o600)
        self._wait("HEALTH_OK and all PGs active+clean", self._healthy,
                   max(1.0, deadline - time.monotonic()))

    def _keyring_for(self, entity: str, caps: list[str], path: Path) -> None:
        got = self.mon("auth get-or-create", entity=entity, caps=caps)
        key = got[0]["key"]
        path.write_text(f"[{entity}]\n\tkey = {key}\n")
        path.chmod(0o600)

    def _healthy(self) -> bool:
        stat = self.mgr("pg stat")
        stat = stat.get("pg_summary", stat)  # Pacific nests the counts there
        states = {s["name"]: s["num"] for s in stat.get("num_pg_by_state", [])}
        total = stat.get("num_pgs", 0)
        if total == 0 or states.get("active+clean", 0) != total:
            return False
        return bool(self.mon("health")["status"] == "HEALTH_OK")

    # ------------------------------------------------------------ what tests use

    def create_pool(self, name: str) -> None:
        """Another rbd pool (size 1), usable by client.kvmpool only if its caps allow it."""
        self.mon("osd pool create", pool=name, pg_num=8, pgp_num=8)
        self.mon("osd pool set", pool=name, var="size", val="1", yes_i_really_mean_it=True)
        import rbd

        with self.admin().open_ioctx(name) as ioctx:
            rbd.RBD().pool_init(ioctx, True)

    def set_user_caps(self, pools: list[str]) -> None:
        osd = ", ".join(f"profile rbd pool={p}" for p in pools)
        self.mon("auth caps", entity=f"client.{USER}",
                 caps=["mon", "profile rbd", "osd", osd, "mgr", osd])

    def df(self) -> Any:
        """``ceph df -f json``."""
        return self.mon("df")

    # ------------------------------------------------------------ down

    def _ours(self) -> list[int]:
        """PIDs whose command line carries ``-c <this conf>`` (daemons we did not track too)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            conf = str(self.conf).encode()
            if any(a == b"-c" and b == conf for a, b in itertools.pairwise(argv)):
                pids.append(int(entry))
        return pids

    def _stop(self, name: str, grace: float = 10.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        if proc.pid not in self._ours():
            return  # not (or no longer) our daemon: never signal someone else's process
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def down(self, *, keep_dir: bool = False) -> None:
        t0 = time.monotonic()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.shutdown()
            self._admin = None
        order = sorted(self.procs, key=lambda n: {"osd": 0, "mgr": 1, "mon": 2}[n[:3]])
        for name in order:
            with contextlib.suppress(Exception):
                self._stop(name)
        for pid in self._ours():  # anything started with our conf that we lost track of
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.procs.clear()
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.timings["down"] = time.monotonic() - t0

    def __enter__(self) -> Cluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def main(argv: list[str]) -> int:
    keep = "--keep-dir" in argv
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    gone = missing()
    if gone:
        print(f"cluster: missing: {' '.join(gone)}", file=sys.stderr)
        return 1
    cluster = Cluster()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cluster.up()
        print(f"cluster: up in {cluster.timings['up']:.1f} s at {cluster.dir}", file=sys.stderr)
        env = dict(os.environ, **cluster.env, KVMPOOL_CEPH_MON=cluster.mon_host,
                   KVMPOOL_CEPH_KEY=cluster.user_key)
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        cluster.down(keep_dir=keep)
        signal.signal(signal.SIGTERM, previous)
        print(f"cluster: down in {cluster.timings['down']:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
