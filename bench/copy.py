#!/usr/bin/env python3
"""vol-clone and vol-download against ``cp --sparse=always`` (and reflink on XFS).

    .venv/bin/python bench/copy.py                 # 8 GiB sparse raw volume, 1 GiB of data
    .venv/bin/python bench/copy.py --size 2048 --data 256    # smaller (MiB)
    .venv/bin/python bench/copy.py --xfs           # also on a loop-mounted XFS (root)
    .venv/bin/python bench/copy.py --quick         # the clone rows only

Every command is a new process (start-up included), source in the page cache. Each item
is timed twice over --repeat runs:

- back to back: an item's runs follow each other, each right after the last one's undo
  (best of --repeat). A plain cp here never writes to the disk: its copy is deleted while
  still dirty, and the next cp reuses the memory just freed;
- settled: the items take turns, and each run starts from the same state (dirty data
  written, disks idle, freed memory given time to go back to the host); best and median.

The targets (issue 3): clone <= 1.2x cp, download --sparse <= 1.5x cp, reflink < 0.1 s.
kvmpool's copies are durable (data on disk when the command returns); plain cp leaves
dirty pages behind, so ``cp && sync`` is printed too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]


def kvmpool(root: Path, *args: str, warm: bool = False) -> None:
    """One kvmpool command; ``warm``: through the running ``kvmpool daemon`` (see main)."""
    env = dict(os.environ, KVMPOOL_ROOT=str(root))
    if not warm:
        env["KVMPOOL_NO_DAEMON"] = "1"
    subprocess.run([str(REPO / ".venv" / "bin" / "kvmpool"), "-q", *args], env=env,
                   check=True, stdout=subprocess.DEVNULL)


def best(fn, undo, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Back to back: each run right after the last one's undo."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        undo()
    return min(times)


def settled(items, repeat: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Each run from the same state: the items take turns, and before each one the dirty
    data is written, the disks have been idle for a second and freed memory has had time
    to go back to the host (this machine's kernel reports free pages to its hypervisor
    after 2 s; memory handed back costs a fault on the host when it is used again)."""
    times: dict[str, list[float]] = {name: [] for name in items}
    for _ in range(repeat):
        for name, (fn, undo) in items.items():
            settle()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            undo()
    return times


def settle(quiet: float = 1.0, after: float = 3.0) -> None:
    os.sync()
    last: list[str] = []
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = _disk_activity()
        if now != last:
            last = now
            since = time.monotonic()
    time.sleep(after)


def _disk_activity() -> list[str]:
    """Writes, discards and I/Os in flight of every block device (/proc/diskstats)."""
    with open("/proc/diskstats") as f:
        return [" ".join(fields[7:12:4] + fields[14:15]) for fields in map(str.split, f)]


def make_source(path: Path, size: int, data: int) -> None:
    """A sparse file of ``size`` bytes holding ``data`` bytes in 64 MiB runs spread over it."""
    chunk = os.urandom(MiB)
    runs = max(1, data // (64 * MiB))
    step = size // runs
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(runs):
            f.seek(i * step)
            for _ in range(min(64 * MiB, data) // MiB):
                f.write(chunk)


def bench_dir(directory: Path, args: argparse.Namespace, label: str) -> None:
    root = directory / "root"
    pool = directory / "pool"
    kvmpool(root, "pool-create-as", "bench", "dir", "--target", str(pool), "--build")
    src = pool / "src.img"
    make_source(src, args.size * MiB, args.data * MiB)
    kvmpool(root, "pool-refresh", "bench")
    cp_dst = directory / "cp.img"
    dl = directory / "download.img"
    cp = ["cp", "--sparse=always", str(src), str(cp_dst)]
    items = {
        "cp --sparse=always": (lambda: subprocess.run(cp, check=True), cp_dst.unlink),
        "cp --sparse=always && sync (durable)": (
            lambda: subprocess.run(["sh", "-c", '"$@" && sync "$4"', "cp", *cp], check=True),
            cp_dst.unlink),
        "kvmpool vol-clone": (
            lambda: kvmpool(root, "vol-clone", "src.img", "clone.img", "bench"),
            lambda: kvmpool(root, "vol-delete", "clone.img", "bench")),
        "kvmpool vol-download --sparse": (
            lambda: kvmpool(root, "vol-download", "src.img", str(dl), "bench", "--sparse"),
            dl.unlink),
        "kvmpool vol-clone, daemon running": (
            lambda: kvmpool(root, "vol-clone", "src.img", "clone.img", "bench", warm=True),
            lambda: kvmpool(root, "vol-delete", "clone.img", "bench")),
        "kvmpool vol-download --sparse, daemon running": (
            lambda: kvmpool(root, "vol-download", "src.img", str(dl), "bench", "--sparse",
                            warm=True),
            dl.unlink),
    }
    if args.quick:
        items = {k: v for k, v in items.items() if "cp" in k or "clone" in k}
    back = {name: best(fn, undo, args.repeat) for name, (fn, undo) in items.items()}
    calm = settled(items, args.repeat)
    print(f"\n## {label}: {args.size} MiB sparse raw volume holding {args.data} MiB")
    print(f"{'':46} {'back to back':>16}   {'settled: best, median':>28}")
    print(f"{'item':46} {'seconds':>8} {'vs cp':>7}   {'seconds':>8} {'vs cp':>6} "
          f"{'median':>7} {'vs cp':>6}")
    cp_back = back["cp --sparse=always"]
    cp_best = min(calm["cp --sparse=always"])
    cp_median = statistics.median(calm["cp --sparse=always"])
    for name, t in back.items():
        low, mid = min(calm[name]), statistics.median(calm[name])
        print(f"{name:46} {t:8.3f} {t / cp_back:7.2f}   {low:8.3f} {low / cp_best:6.2f} "
              f"{mid:7.3f} {mid / cp_median:6.2f}")
    kvmpool(root, "vol-delete", "src.img", "bench")
    kvmpool(root, "pool-destroy", "bench")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="volume size in MiB (8192)")
    ap.add_argument("--data", type=int, default=1024, help="MiB of data in it (1024)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="clone rows only (no download)")
    ap.add_argument("--xfs", action="store_true", help="also on a loop-mounted XFS (reflink)")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True,
                   stdout=subprocess.DEVNULL)  # kvmpool as installed: bytecode compiled
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}  nproc={os.cpu_count()} "
          f"kernel={os.uname().release}")
    base = Path(tempfile.mkdtemp(prefix="kvmpool-copy-", dir="/var/tmp"))
    # A kvmpool daemon for the "daemon running" rows (the other rows bypass it).
    os.environ["KVMPOOL_DAEMON_SOCKET"] = str(base / "daemon" / "cli.sock")
    daemon = subprocess.Popen([str(REPO / ".venv" / "bin" / "kvmpool"), "-q", "daemon"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (base / "daemon" / "cli.sock").exists():
            if daemon.poll() is not None:
                raise SystemExit("kvmpool daemon did not start")
            time.sleep(0.05)
        bench_dir(base, args, "host file system (" + _fs(base) + ")")
        if args.xfs:
            img = base / "xfs.img"
            mnt = base / "xfs"
            mnt.mkdir()
            with open(img, "wb") as f:
                f.truncate((args.size * 3 + 1024) * MiB)
            subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)], check=True)
            subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
            try:
                bench_dir(mnt, args, "loop-mounted XFS with reflink")
            finally:
                subprocess.run(["umount", str(mnt)], check=False)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _fs(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True,
                         check=False).stdout.split()
    return out[-1] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
