"""libiscsi's command-line tools (Debian ``libiscsi-bin``): a user-space iSCSI initiator.

No kernel initiator, no iscsid, no sessions left behind: every tool logs in, asks, logs out.
Used here:

- ``iscsi-ls -i INITIATOR iscsi://HOST:PORT``: SendTargets discovery (targets of a portal);
- ``iscsi-ls -s ...``: the same plus, per target, a login and REPORT LUNS with each LUN's
  peripheral type; it stops at the first target it cannot log in to (another target's CHAP
  or ACL): then ``python -m kvmpool.host.reportluns`` (libiscsi through ctypes, in a child
  process) asks the pool's target alone, with the same output format;
- ``iscsi-readcapacity16 -s -i INITIATOR iscsi://HOST:PORT/IQN/LUN``: the LUN's size
  (READ CAPACITY(16): block length x (last LBA + 1)), in bytes.

**CHAP.** libiscsi takes ``iscsi://user%password@host/...`` URLs, but an argument is visible
to every user of the host (``ps``, ``/proc/PID/cmdline``). The password goes through the
environment of the one tool process instead (``LIBISCSI_CHAP_USERNAME`` /
``LIBISCSI_CHAP_PASSWORD``, read by libiscsi's URL parser; ``Runner.run(env=...)``), which
only the same user (root) can read (``/proc/PID/environ`` is 0400). kvmpool's own environment
is never changed (the REST service runs calls in threads). The password is also passed to
``Runner.run(secrets=...)``, so it is redacted from anything kept or printed. Any
``LIBISCSI_CHAP_*`` the caller's environment had is removed from the tool's, so only the
pool's XML decides.

Every call has a bounded timeout (a portal that accepts the connection and never answers
would otherwise hang the tools forever).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from kvmpool.errors import (
    HostCommandFailed,
    InvalidArgument,
    KvmpoolError,
    NotFound,
    ToolMissing,
)
from kvmpool.host.run import Completed, Runner

DEFAULT_PORT = 3260
TIMEOUT = 15.0  # seconds for one tool run (login + a few SCSI commands)
# libiscsi's own default initiator name is per tool; libvirt requires one for iscsi-direct.
DEFAULT_INITIATOR = "iqn.2026-11.org.kvmpool:discovery"
CHAP_VARS = ("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD",
             "LIBISCSI_CHAP_TARGET_USERNAME", "LIBISCSI_CHAP_TARGET_PASSWORD")


@dataclass(frozen=True, slots=True)
class Chap:
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"Chap(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True, slots=True)
class Lun:
    number: int
    type: str  # DIRECT_ACCESS, STORAGE_ARRAY_CONTROLLER, CDROM ...


@dataclass(frozen=True, slots=True)
class Target:
    iqn: str
    portal: str  # host:port,tpgt as the target reports it
    luns: tuple[Lun, ...] = ()


# ------------------------------------------------------------------ URLs and argv


def host_part(host: str, port: int | None) -> str:
    """``host:port`` with IPv6 addresses in brackets."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port or DEFAULT_PORT}"


def portal_url(host: str, port: int | None) -> str:
    return f"iscsi://{host_part(host, port)}"


def lun_url(host: str, port: int | None, iqn: str, lun: int) -> str:
    """The URL QEMU opens directly (``-drive file=iscsi://host:port/iqn/lun``)."""
    return f"{portal_url(host, port)}/{iqn}/{lun}"


def ls_argv(initiator: str, url: str, *, luns: bool) -> list[str]:
    return ["iscsi-ls", *(["-s"] if luns else []), "-i", initiator, url]


def reportluns_argv(initiator: str, url: str, timeout: float | None = None) -> list[str]:
    """kvmpool's REPORT LUNS of one target (``python -m kvmpool.host.reportluns``)."""
    limit = TIMEOUT if timeout is None else timeout
    return [sys.executable, "-m", "kvmpool.host.reportluns", initiator, url, f"{limit:g}"]


def readcapacity_argv(initiator: str, url: str) -> list[str]:
    return ["iscsi-readcapacity16", "-s", "-i", initiator, url]


# ------------------------------------------------------------------ parsers

# iscsi-ls [-s] prints (libiscsi 1.19):
#   Target:iqn.2026-11.test:t1 Portal:127.0.0.1:13261,1
#   Lun:0    Type:STORAGE_ARRAY_CONTROLLER
#   Lun:1    Type:DIRECT_ACCESS (Size:15M)
_TARGET = re.compile(r"^Target:(\S+)\s+Portal:(\S+)\s*$")
_LUN = re.compile(r"^Lun:(\d+)\s+Type:(\S+)")


def parse_ls(text: str) -> list[Target]:
    """Targets (with their LUNs, for ``-s``) in the order iscsi-ls printed them."""
    targets: list[Target] = []
    for line in text.splitlines():
        line = line.strip()
        if m := _TARGET.match(line):
            targets.append(Target(m.group(1), m.group(2)))
        elif (m := _LUN.match(line)) and targets:
            last = targets[-1]
            lun = Lun(int(m.group(1)), m.group(2))
            targets[-1] = Target(last.iqn, last.portal, (*last.luns, lun))
    return targets


def parse_size(text: str) -> int:
    """``iscsi-readcapacity16 -s`` prints the size in bytes alone: ``16777216``."""
    value = text.strip()
    if not value.isdigit():
        raise KvmpoolError(f"iscsi-readcapacity16 printed no size: {value[:80]!r}")
    return int(value)


# ------------------------------------------------------------------ errors

# libiscsi's stderr, as recorded (1.19 against tgt 1.0.85):
#   Login Failed. Failed to log in to target. Status: Authentication failure(513)
#   Login Failed. Failed to log in to target. Status: Authorization failure(514)
#   Login Failed. Failed to log in to target. Status: Target not found(515)
#   Login Failed. SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LOGICAL_UNIT_NOT_SUPPORTED(0x2500)
#   list_luns: iscsi_connect failed. Failed to log in to target. Status: Authentication ...
#   discoveryconnect_cb: connection failed : iscsi_service: socket error Connection refused(111).
_CAUSES: Sequence[tuple[str, str, type[KvmpoolError], str]] = (
    ("Authentication failure", "CHAP authentication failed", InvalidArgument,
     "check the pool's <auth> username and the value of its secret (secret-set-value)"),
    ("Authorization failure", "the target does not accept this initiator", InvalidArgument,
     "check the pool's <initiator><iqn> against the target's ACL"),
    ("Target not found", "no such target at this portal", NotFound,
     "list the portal's targets: kvmpool find-storage-pool-sources-as iscsi --host H "
     "--port P"),
    ("LOGICAL_UNIT_NOT_SUPPORTED", "no such LUN", NotFound, "refresh the pool"),
    ("Connection refused", "connection refused", KvmpoolError,
     "check the host and port, and that the target is running"),
    ("No route to host", "no route to host", KvmpoolError, "check the host address"),
    ("Network is unreachable", "network unreachable", KvmpoolError, "check the host address"),
    ("Name or service not known", "unknown host name", KvmpoolError, "check the host name"),
    ("Failed to resolve", "unknown host name", KvmpoolError, "check the host name"),
)


def classify(result: Completed, what: str) -> KvmpoolError:
    """One line naming ``what`` failed and why; the tool's own words are for --debug."""
    text = result.stderr + "\n" + result.stdout
    for needle, why, cls, hint in _CAUSES:
        if needle in text:
            err = cls(f"{what}: {why}", hint=hint)
            break
    else:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"{result.argv[0]} exit code {result.returncode}"
        err = KvmpoolError(f"{what}: {detail}")
    return err


# ------------------------------------------------------------------ running


def chap_environment(chap: Chap | None) -> dict[str, str | None]:
    """The LIBISCSI_CHAP_* variables a tool gets for ``chap`` (None: removed)."""
    env: dict[str, str | None] = dict.fromkeys(CHAP_VARS)
    if chap is not None:
        if "\0" in chap.password or "\0" in chap.username:
            raise InvalidArgument("the CHAP secret or username contains a NUL byte")
        env["LIBISCSI_CHAP_USERNAME"] = chap.username
        env["LIBISCSI_CHAP_PASSWORD"] = chap.password
    return env


def _run(runner: Runner, argv: list[str], chap: Chap | None, what: str,
         timeout: float | None) -> Completed:
    limit = TIMEOUT if timeout is None else timeout
    hidden = (chap.password,) if chap is not None else ()
    try:
        return runner.run(argv, changes=False, timeout=limit, check=False, secrets=hidden,
                          env=chap_environment(chap))
    except ToolMissing as err:
        err.hint = "install it: apt-get install libiscsi-bin"
        raise
    except HostCommandFailed as err:
        if err.returncode is None:  # timed out
            raise KvmpoolError(f"{what}: no answer within {limit:g} s",
                               hint="check that the portal is reachable and the target "
                                    "running") from None
        raise


def discover(runner: Runner, host: str, port: int | None, initiator: str | None = None,
             *, timeout: float | None = None) -> list[Target]:
    """SendTargets discovery. Runs ``iscsi-ls``."""
    url = portal_url(host, port)
    result = _run(runner, ls_argv(initiator or DEFAULT_INITIATOR, url, luns=False), None,
                  f"cannot discover targets at iSCSI portal {host_part(host, port)}", timeout)
    if result.returncode != 0:
        raise classify(result, f"cannot discover targets at iSCSI portal "
                               f"{host_part(host, port)}")
    return parse_ls(result.stdout)


def target_luns(runner: Runner, host: str, port: int | None, initiator: str, iqn: str,
                chap: Chap | None, *, timeout: float | None = None) -> list[Lun]:
    """The LUNs of target ``iqn`` (REPORT LUNS, with their types). Runs ``iscsi-ls -s``."""
    portal = host_part(host, port)
    what = f"cannot list the LUNs of iSCSI target {iqn} at {portal}"
    result = _run(runner, ls_argv(initiator, portal_url(host, port), luns=True), chap, what,
                  timeout)
    targets = parse_ls(result.stdout)
    ours = [i for i, t in enumerate(targets) if t.iqn == iqn]
    if result.returncode == 0 or (ours and ours[-1] < len(targets) - 1):
        if not ours:
            raise NotFound(f"{what}: no such target at this portal",
                           hint=f"list the portal's targets: kvmpool "
                                f"find-storage-pool-sources-as iscsi --host {host}"
                                + (f" --port {port}" if port else ""))
        return list(targets[ours[0]].luns)
    if not targets or (ours and ours[-1] == len(targets) - 1):
        raise classify(result, what)
    # iscsi-ls stopped at another target of the portal (its CHAP or ACL) before reaching
    # ours: ask our target alone, with kvmpool's own REPORT LUNS (kvmpool.host.reportluns).
    result = _run(runner, reportluns_argv(initiator, lun_url(host, port, iqn, 0), timeout),
                  chap, what, timeout)
    ours_only = [t for t in parse_ls(result.stdout) if t.iqn == iqn]
    if result.returncode != 0 or not ours_only:
        raise classify(result, what)
    return list(ours_only[0].luns)


def lun_size(runner: Runner, host: str, port: int | None, initiator: str, iqn: str, lun: int,
             chap: Chap | None, *, timeout: float | None = None) -> int:
    """Bytes of one LUN. Runs ``iscsi-readcapacity16 -s``."""
    what = f"cannot read the size of LUN {lun} of iSCSI target {iqn} at {host_part(host, port)}"
    result = _run(runner, readcapacity_argv(initiator, lun_url(host, port, iqn, lun)), chap,
                  what, timeout)
    if result.returncode != 0:
        raise classify(result, what)
    return parse_size(result.stdout)
