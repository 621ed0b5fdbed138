#!/usr/bin/env python3
"""kvmpool vs virsh on the same directory: wall-clock time of the same commands.

Starts a private libvirtd (tests/libvirtd.py: storage driver only, cleaned up afterwards),
fills one directory with N volumes (a third sparse raw files, two thirds copies of one
small qcow2), defines the same dir pool in libvirt and in kvmpool (a private KVMPOOL_ROOT),
then times each item with virsh and with kvmpool, printing both times and the ratio
kvmpool/virsh (below 1: kvmpool is faster). Every call is a fresh process (start-up
included), output to a pipe, page cache warm (the files were just written).

    sudo .venv/bin/python bench/vs_virsh.py            # N=10000
    sudo .venv/bin/python bench/vs_virsh.py --n 300    # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.libvirtd import Libvirtd, ensure_installed  # noqa: E402

MiB = 1024 * 1024


def kvmpool_argv() -> list[str]:
    for cand in (REPO / ".venv" / "bin" / "kvmpool", Path(sys.executable).with_name("kvmpool")):
        if cand.exists():
            return [str(cand)]
    found = shutil.which("kvmpool")
    if found:
        return [found]
    return [sys.executable, "-m", "kvmpool"]


class Bench:
    def __init__(self, lv: Libvirtd, root: Path, pool: str, cold: bool = False) -> None:
        self.cold = cold
        self.lv = lv
        self.root = root
        self.pool = pool

    def virsh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(self.lv.virsh_argv(*args), {})

    def kvmpool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([*kvmpool_argv(), *args], {"KVMPOOL_ROOT": str(self.root)})

    @staticmethod
    def _run(argv: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", **extra}
        res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            raise SystemExit(f"failed: {' '.join(argv)}\n{res.stderr}{res.stdout}")
        return res

    def has(self, command: str) -> bool:
        env = {**os.environ, "KVMPOOL_ROOT": str(self.root)}
        res = subprocess.run([*kvmpool_argv(), command, "--help"], capture_output=True,
                             env=env, check=False)
        return res.returncode == 0

    def cpu(self) -> float:
        """CPU seconds so far of our reaped children (virsh, kvmpool, qemu-img under
        kvmpool) plus libvirtd's own and its reaped children's (qemu-img under libvirtd)."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = ru.ru_utime + ru.ru_stime
        if self.lv.proc is not None:
            with open(f"/proc/{self.lv.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        return total

    def time(self, label: str, virsh: Callable[[], object] | None,
             kvmpool: Callable[[], object] | None, repeat: int, note: str = "",
             after: tuple[Callable[[], object], Callable[[], object]] | None = None) -> None:
        """Best of ``repeat`` runs of each; ``after`` (virsh's, kvmpool's) undoes a run, untimed."""

        def best(fn: Callable[[], object] | None, undo: Callable[[], object] | None,
                 ) -> tuple[float, float] | None:
            if fn is None:
                return None
            walls, cpus = [], []
            for _ in range(repeat):
                if self.cold:
                    drop_caches()
                c0, t0 = self.cpu(), time.perf_counter()
                fn()
                walls.append(time.perf_counter() - t0)
                cpus.append(self.cpu() - c0)
                if undo is not None:
                    undo()
            return min(walls), min(cpus)

        tv = best(virsh, after[0] if after else None)
        tk = best(kvmpool, after[1] if after else None)
        print(_row(label, tv, tk, note), flush=True)


def drop_caches() -> None:
    """Cold page cache for the next run (root; slows everything else on the host a bit)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def _fmt(t: float | None) -> str:
    return "-" if t is None else f"{t:.3f} s"


HEADER = (f"{'item':<44} {'virsh':>9} {'kvmpool':>9} {'ratio':>6}  "
          f"{'cpu virsh':>9} {'cpu kvmp':>9}")


def _row(label: str, tv: tuple[float, float] | None, tk: tuple[float, float] | None,
         note: str) -> str:
    ratio = f"{tk[0] / tv[0]:.2f}" if tv and tk and tv[0] else "-"
    line = (f"{label:<44} {_fmt(tv and tv[0]):>9} {_fmt(tk and tk[0]):>9} {ratio:>6}  "
            f"{_fmt(tv and tv[1]):>9} {_fmt(tk and tk[1]):>9}")
    return f"{line}   {note}" if note else line


def fill(target: Path, n: int) -> tuple[int, int]:
    """n volumes quickly: sparse raw files (truncate) and copies of one small qcow2."""
    template = target.parent / "template.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10",
                    str(template), "10G"], check=True)
    data = template.read_bytes()
    raws = qcows = 0
    for i in range(n):
        if i % 3 == 0:
            with open(target / f"vol{i:05d}.img", "wb") as f:
                f.truncate(10 * MiB)
            raws += 1
        else:
            with open(target / f"vol{i:05d}.qcow2", "wb") as f:
                f.write(data)
            qcows += 1
    template.unlink()
    return raws, qcows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="volumes in the pool (default 10000)")
    ap.add_argument("--repeat", type=int, default=3, help="best of R runs per item (default 3)")
    ap.add_argument("--dir", default=None, help="where to make the pool (default: a new "
                    "directory under /var/tmp; same file system as the host's root here)")
    ap.add_argument("--src", metavar="DIR", help="run kvmpool from DIR (a src/ tree, e.g. "
                    "from `git archive HEAD src`) instead of the working tree")
    ap.add_argument("--cold", action="store_true", help="drop the page cache (sync; "
                    "echo 3 > /proc/sys/vm/drop_caches) before every timed run")
    ap.add_argument("--install", action="store_true",
                    help="apt-get install libvirt-daemon and libvirt-clients if missing")
    ap.add_argument("--clone-size", default="1024", help="MiB of the vol-clone/download "
                    "source (raw, fully written; default 1024)")
    args = ap.parse_args()
    if args.install:
        ensure_installed()
    src = os.path.abspath(args.src) if args.src else str(REPO / "src")
    if args.src:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p)
    # time kvmpool as installed, with its bytecode compiled (not compiling it at every start
    # where PYTHONDONTWRITEBYTECODE is set)
    subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True,
                   stdout=subprocess.DEVNULL)

    base = Path(tempfile.mkdtemp(prefix="kvmpool-bench-", dir=args.dir or "/var/tmp"))
    target = base / "images"
    target.mkdir(mode=0o711)
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}  host: nproc={os.cpu_count()} "
          f"kernel={platform.release()}  python={platform.python_version()}")
    print(f"# kvmpool: {' '.join(kvmpool_argv())}"
          f"{' with PYTHONPATH=' + os.environ['PYTHONPATH'] if args.src else ''}")
    print(f"# pool directory: {target}  ({_fs(target)})  page cache: "
          f"{'dropped before every timed run' if args.cold else 'warm'}")
    t0 = time.perf_counter()
    raws, qcows = fill(target, args.n)
    print(f"# made {args.n} volumes ({raws} raw sparse 10 MiB, {qcows} qcow2 10 GiB copies) "
          f"in {time.perf_counter() - t0:.1f} s")
    try:
        with Libvirtd() as lv:
            pool = lv.pool_name("bench")
            lv.virsh("pool-define-as", pool, "dir", "--target", str(target))
            t0 = time.perf_counter()
            lv.virsh("pool-start", pool)
            print(f"# libvirt pool-start (its first refresh): {time.perf_counter() - t0:.3f} s")
            b = Bench(lv, base / "kvmpool-root", pool, cold=args.cold)
            xml_file = base / "pool.xml"
            xml_file.write_text(lv.virsh("pool-dumpxml", "--inactive", pool).stdout)
            b.kvmpool("pool-define", str(xml_file))
            b.kvmpool("pool-start", pool)
            run(b, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _fs(path: Path) -> str:
    res = subprocess.run(["df", "--output=fstype,source", str(path)], capture_output=True,
                         text=True, check=False)
    return " ".join(res.stdout.split()[2:]) or "?"


def run(b: Bench, args: argparse.Namespace) -> None:
    n, r, pool = args.n, args.repeat, b.pool
    # No kvmpool daemon for the first items (not even one already running for this user):
    # the socket named here exists only once run_warm starts one.
    sock = b.root.parent / "daemon" / "cli.sock"
    os.environ["KVMPOOL_DAEMON_SOCKET"] = str(sock)
    print("\nwall-clock seconds (best of runs); ratio = kvmpool/virsh wall, below 1: kvmpool "
          "faster;\ncpu = user+sys of every process involved (virsh + libvirtd, or kvmpool), "
          "less sensitive to a busy host")
    print(HEADER)
    print("-" * len(HEADER))

    b.time("start-up only (--version, no connection)",
           lambda: b._run(["virsh", "--version"], {}), lambda: b.kvmpool("--version"), r)
    theirs = b.virsh("vol-list", pool, "--details").stdout
    ours = b.kvmpool("vol-list", pool, "--details").stdout
    same = "same output" if ours == theirs else "OUTPUT DIFFERS"
    b.time(f"vol-list --details (N={n})", lambda: b.virsh("vol-list", pool, "--details"),
           lambda: b.kvmpool("vol-list", pool, "--details"), r, same)
    b.time(f"vol-list (N={n})", lambda: b.virsh("vol-list", pool),
           lambda: b.kvmpool("vol-list", pool), r)
    b.time(f"pool-refresh (N={n})", lambda: b.virsh("pool-refresh", pool),
           lambda: b.kvmpool("pool-refresh", pool), r,
           "kvmpool keeps no volume cache: its refresh is statvfs only")
    b.time("pool-info", lambda: b.virsh("pool-info", pool),
           lambda: b.kvmpool("pool-info", pool), r)

    def create(tool: Callable[..., object], name: str) -> Callable[[], object]:
        def go() -> object:
            return tool("vol-create-as", pool, name, "10G", "--format", "qcow2")
        return go

    b.time("vol-create-as 10G --format qcow2 (one call)", create(b.virsh, "bench-v.qcow2"),
           create(b.kvmpool, "bench-k.qcow2"), r, "",
           (lambda: b.virsh("vol-delete", "bench-v.qcow2", "--pool", pool),
            lambda: b.kvmpool("vol-delete", "bench-k.qcow2", "--pool", pool)))

    size = int(args.clone_size) * MiB
    src = b.lv.pool_name("clone-src.img")
    path = Path(b.lv.virsh("pool-dumpxml", pool).stdout.split("<path>")[1].split("<")[0])
    with open(path / src, "wb") as f:
        chunk = os.urandom(MiB)
        for _ in range(size // MiB):
            f.write(chunk)
    b.virsh("pool-refresh", pool)
    out = path.parent / "download.bin"
    items = [
        (f"vol-clone raw {args.clone_size} MiB", "vol-clone",
         ("vol-clone", src, "bench-clone.img", "--pool", pool),
         lambda tool: tool("vol-delete", "bench-clone.img", "--pool", pool)),
        (f"vol-download raw {args.clone_size} MiB", "vol-download",
         ("vol-download", src, str(out), "--pool", pool),
         lambda tool: out.unlink()),
    ]
    for label, verb, argv, undo in items:
        def with_virsh(argv: tuple[str, ...] = argv) -> object:
            return b.virsh(*argv)

        def with_kvmpool(argv: tuple[str, ...] = argv) -> object:
            return b.kvmpool(*argv)

        def undo_v(undo: Callable[..., object] = undo) -> object:
            return undo(b.virsh)

        def undo_k(undo: Callable[..., object] = undo) -> object:
            return undo(b.kvmpool)

        if b.has(verb):
            b.time(label, with_virsh, with_kvmpool, 1, "", (undo_v, undo_k))
        else:
            b.time(label, with_virsh, None, 1, f"kvmpool: {verb} not implemented yet",
                   (undo_v, undo_v))
    (path / src).unlink()
    run_warm(b, r, sock, create)


def run_warm(b: Bench, r: int, sock: Path,
             create: Callable[[Callable[..., object], str], Callable[[], object]]) -> None:
    """The short commands again with a ``kvmpool daemon`` running, as virsh has libvirtd."""
    env = {**os.environ, "KVMPOOL_ROOT": str(b.root)}
    daemon = subprocess.Popen([*kvmpool_argv(), "-q", "daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kvmpool daemon did not start")
            time.sleep(0.05)
        note = "kvmpool daemon running (cpu: client only)"
        b.time("start-up only, kvmpool daemon running",
               lambda: b._run(["virsh", "--version"], {}), lambda: b.kvmpool("--version"), r,
               note)
        b.time("pool-info, kvmpool daemon running", lambda: b.virsh("pool-info", b.pool),
               lambda: b.kvmpool("pool-info", b.pool), r, note)
        b.time("vol-create-as 10G qcow2, kvmpool daemon running",
               create(b.virsh, "bench-v.qcow2"), create(b.kvmpool, "bench-k.qcow2"), r, note,
               (lambda: b.virsh("vol-delete", "bench-v.qcow2", "--pool", b.pool),
                lambda: b.kvmpool("vol-delete", "bench-k.qcow2", "--pool", b.pool)))
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
