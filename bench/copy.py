#!/usr/bin/env python3
"""vol-clone and vol-download against ``cp --sparse=always`` (and reflink on XFS).

    .venv/bin/python bench/copy.py                 # 8 GiB sparse raw volume, 1 GiB of data
    .venv/bin/python bench/copy.py --size 2048 --data 256    # smaller (MiB)
    .venv/bin/python bench/copy.py --xfs           # also on a loop-mounted XFS (root)

Every command is a new process (start-up included), page cache warm, best of --repeat.
The targets (issue 3): clone <= 1.2x cp, download --sparse <= 1.5x cp, reflink < 0.1 s.
kvmpool's copies are durable (data on disk when the command returns); plain cp leaves
dirty pages behind, so ``cp && sync`` is printed too, for a like-for-like figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        undo()
    return min(times)


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
    t_cp = best(lambda: subprocess.run(["cp", "--sparse=always", str(src), str(cp_dst)],
                                       check=True),
                lambda: cp_dst.unlink(), args.repeat)
    t_cp_sync = best(lambda: subprocess.run(["sh", "-c", 'cp --sparse=always "$1" "$2" && '
                                             'sync "$2"', "cp", str(src), str(cp_dst)],
                                            check=True),
                     lambda: cp_dst.unlink(), args.repeat)
    t_clone = best(lambda: kvmpool(root, "vol-clone", "src.img", "clone.img", "bench"),
                   lambda: kvmpool(root, "vol-delete", "clone.img", "bench"), args.repeat)
    t_dl = best(lambda: kvmpool(root, "vol-download", "src.img", str(dl), "bench", "--sparse"),
                lambda: dl.unlink(), args.repeat)
    t_clone_w = best(lambda: kvmpool(root, "vol-clone", "src.img", "clone.img", "bench",
                                     warm=True),
                     lambda: kvmpool(root, "vol-delete", "clone.img", "bench"), args.repeat)
    t_dl_w = best(lambda: kvmpool(root, "vol-download", "src.img", str(dl), "bench",
                                  "--sparse", warm=True),
                  lambda: dl.unlink(), args.repeat)
    print(f"\n## {label}: {args.size} MiB sparse raw volume holding {args.data} MiB")
    print(f"{'item':42} {'seconds':>8} {'vs cp':>7}")
    print(f"{'cp --sparse=always':42} {t_cp:8.3f} {1:7.2f}")
    print(f"{'cp --sparse=always && sync (durable)':42} {t_cp_sync:8.3f} "
          f"{t_cp_sync / t_cp:7.2f}")
    print(f"{'kvmpool vol-clone':42} {t_clone:8.3f} {t_clone / t_cp:7.2f}")
    print(f"{'kvmpool vol-download --sparse':42} {t_dl:8.3f} {t_dl / t_cp:7.2f}")
    print(f"{'kvmpool vol-clone, daemon running':42} {t_clone_w:8.3f} {t_clone_w / t_cp:7.2f}")
    print(f"{'kvmpool vol-download --sparse, daemon running':42} {t_dl_w:8.3f} "
          f"{t_dl_w / t_cp:7.2f}")
    kvmpool(root, "vol-delete", "src.img", "bench")
    kvmpool(root, "pool-destroy", "bench")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="volume size in MiB (8192)")
    ap.add_argument("--data", type=int, default=1024, help="MiB of data in it (1024)")
    ap.add_argument("--repeat", type=int, default=3)
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
