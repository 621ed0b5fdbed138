"""open-iscsi's ``iscsiadm`` (Debian ``open-iscsi``): the kernel initiator's control tool.

Pure command builders, output parsers and an error classifier, shaped after libvirt's
``src/util/viriscsi.c`` (same modes and options, long option names), for the ``iscsi`` pool
type. Nothing here runs a command; the caller passes the argv to ``Runner.run``.

**CHAP secrets and the process list.** libvirt sets the password with
``iscsiadm --mode node ... --op update --name node.session.auth.password --value SECRET``:
for the life of that process every user of the host can read the secret in ``ps`` or
``/proc/PID/cmdline``. iscsiadm has no way to read a value from stdin or a file. open-iscsi
keeps the node record as a text file readable by root only (``/etc/iscsi/nodes/<target>/
<host>,<port>,<tpgt>/<iface>``, mode 0600; recorded below), and iscsiadm reads that record
when it logs in. The least-exposed way is therefore:

1. ``--op new`` creates the record (no secret involved);
2. :func:`record_with_chap` rewrites the record's text with the CHAP settings, written back
   atomically with mode 0600 (the password then exists only where open-iscsi keeps it anyway:
   ``iscsiadm --op update`` would write exactly the same line to the same file);
3. ``--login``.

:func:`node_record_paths` lists where the record may be. Where no record file can be found
(another open-iscsi build, another ``nodes`` directory), :func:`chap_update_argvs` gives
libvirt's argv form; the caller must then pass the password to ``Runner.run(secrets=...)`` so
it is redacted from --debug and dry-run output, and accept the brief exposure in ``ps``.
``iscsiadm`` itself prints ``node.session.auth.password = ********`` unless given ``-S``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from kvmpool.errors import (
    AlreadyExists,
    InvalidArgument,
    KvmpoolError,
    NotFound,
    ToolMissing,
)
from kvmpool.host.run import Completed

DEFAULT_PORT = 3260
NODES_DIRS = ("/etc/iscsi/nodes", "/var/lib/iscsi/nodes")  # Debian, then Red Hat builds
LOGIN_TIMEOUT = 60.0  # iscsiadm's own login retries take up to ~30 s by default


# ------------------------------------------------------------------ portals and ifaces


def portal(host: str, port: int | None, tpgt: int = 1) -> str:
    """libvirt's portal string: ``host:port,1``, ``[v6]:port,1``."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port or DEFAULT_PORT},{tpgt}"


def iface_name(initiator_iqn: str) -> str:
    """The iface kvmpool uses for an initiator IQN (libvirt: ``libvirt-iface-<random>``).

    Derived from the IQN, so the same pool finds the same iface again instead of adding a
    new one at every start.
    """
    return f"kvmpool-iface-{zlib.crc32(initiator_iqn.encode()):08x}"


# ------------------------------------------------------------------ argv builders


def _node(p: str, target: str) -> list[str]:
    return ["iscsiadm", "--mode", "node", "--portal", p, "--targetname", target]


def discovery_argv(p: str, iface: str | None = None) -> list[str]:
    """SendTargets discovery that leaves no node records behind."""
    argv = ["iscsiadm", "--mode", "discovery", "--type", "sendtargets", "--portal", p]
    if iface is not None:
        return [*argv, "--interface", iface]
    return [*argv, "--op", "nonpersistent"]


def node_new_argv(p: str, target: str) -> list[str]:
    return [*_node(p, target), "--op", "new"]


def node_delete_argv(p: str, target: str) -> list[str]:
    return [*_node(p, target), "--op", "delete"]


def node_update_argv(p: str, target: str, name: str, value: str) -> list[str]:
    """One ``--op update``. Never use this for the password (see the module note)."""
    return [*_node(p, target), "--op", "update", "--name", name, "--value", value]


def chap_update_argvs(p: str, target: str, username: str, password: str) -> list[list[str]]:
    """libvirt's CHAP settings as argv: the fallback, with the password in argv. The caller
    must redact it (``Runner.run(secrets=[password])``)."""
    return [node_update_argv(p, target, "node.session.auth.authmethod", "CHAP"),
            node_update_argv(p, target, "node.session.auth.username", username),
            node_update_argv(p, target, "node.session.auth.password", password)]


def login_argv(p: str, target: str, iface: str | None = None) -> list[str]:
    argv = [*_node(p, target), "--login"]
    return [*argv, "--interface", iface] if iface is not None else argv


def logout_argv(p: str, target: str) -> list[str]:
    return [*_node(p, target), "--logout"]


def sessions_argv(detail: bool = False) -> list[str]:
    return ["iscsiadm", "--mode", "session", *(["-P", "3"] if detail else [])]


def rescan_argv(sid: int) -> list[str]:
    return ["iscsiadm", "--mode", "session", "-r", str(sid), "-R"]


def iface_new_argv(iface: str) -> list[str]:
    return ["iscsiadm", "--mode", "iface", "--interface", iface, "--op", "new"]


def iface_initiator_argv(iface: str, initiator_iqn: str) -> list[str]:
    return ["iscsiadm", "--mode", "iface", "--interface", iface, "--op", "update",
            "--name", "iface.initiatorname", "--value", initiator_iqn]


# ------------------------------------------------------------------ node records

# A node record as ``iscsiadm --op new`` writes it (open-iscsi 2.1.8, Debian 12), 0600 root:
#   /etc/iscsi/nodes/iqn.2026-11.org.kvmpool:record-sample/127.0.0.1,3999
#   # BEGIN RECORD 2.1.8
#   node.name = iqn.2026-11.org.kvmpool:record-sample
#   node.tpgt = -1
#   ...
#   node.session.auth.authmethod = None
#   node.session.auth.chap_algs = MD5
#   ...
#   # END RECORD
# After ``--op update`` of authmethod, username and password the record holds (in order):
#   node.session.auth.authmethod = CHAP
#   node.session.auth.username = alice
#   node.session.auth.password = <the password, in clear>
#   node.session.auth.chap_algs = MD5
# Records found by discovery live one level deeper: <host>,<port>,<tpgt>/<iface>.

_AUTH_KEYS = ("node.session.auth.authmethod", "node.session.auth.username",
              "node.session.auth.password")


def node_record_paths(target: str, host: str, port: int | None, tpgt: int = 1,
                      iface: str = "default",
                      nodes_dirs: Sequence[str] = NODES_DIRS) -> list[str]:
    """Where open-iscsi may keep the record of ``target`` at ``host:port``, most likely first."""
    if "/" in target or target in (".", ".."):
        raise InvalidArgument(f"invalid iSCSI target name '{target}'")
    where = f"{host},{port or DEFAULT_PORT}"
    found = []
    for nodes in nodes_dirs:
        found += [f"{nodes}/{target}/{where},{tpgt}/{iface}", f"{nodes}/{target}/{where}"]
    return found


def record_with_chap(record: str, username: str, password: str) -> str:
    """``record`` with CHAP set, as three ``--op update`` calls would leave it."""
    for value in (username, password):
        if "\n" in value or "\r" in value or "\0" in value:
            raise InvalidArgument("a CHAP username or secret cannot contain line breaks or NUL")
    if "# BEGIN RECORD" not in record or "# END RECORD" not in record:
        raise InvalidArgument("not an open-iscsi node record")
    wanted = dict(zip(_AUTH_KEYS, ("CHAP", username, password), strict=True))
    lines = [ln for ln in record.split("\n")
             if ln.split(" = ", 1)[0].strip() not in wanted]
    new = [f"{key} = {value}" for key, value in wanted.items()]
    anchor = next((i for i, ln in enumerate(lines) if ln.startswith("node.session.auth.")),
                  next(i for i, ln in enumerate(lines) if ln.startswith("# END RECORD")))
    return "\n".join(lines[:anchor] + new + lines[anchor:])


# ------------------------------------------------------------------ parsers

# iscsiadm --mode discovery --type sendtargets --portal 127.0.0.1:3260,1 --op nonpersistent
#   127.0.0.1:3260,1 iqn.2026-11.org.kvmpool.test:plain
#   [fd00::1]:3260,1 iqn.2026-11.org.kvmpool.test:plain
_DISCOVERY = re.compile(r"^\s*(\S+)\s+(\S+)\s*$")


def parse_discovery(text: str) -> list[tuple[str, str]]:
    """(portal, target IQN) pairs, libvirt's regex ``^\\s*(\\S+)\\s+(\\S+)\\s*$``."""
    pairs = []
    for line in text.splitlines():
        if m := _DISCOVERY.match(line):
            pairs.append((m.group(1), m.group(2)))
    return pairs


# iscsiadm --mode session
#   tcp: [1] 127.0.0.1:3260,1 iqn.2026-11.org.kvmpool.test:plain (non-flash)
# (no session: exit 21, stderr "iscsiadm: No active sessions.")
_SESSION = re.compile(r"^(\S+):\s+\[(\d+)\]\s+(\S+)\s+(\S+)")


@dataclass(frozen=True, slots=True)
class Session:
    transport: str
    sid: int
    portal: str
    target: str


def parse_sessions(text: str) -> list[Session]:
    found = []
    for line in text.splitlines():
        if m := _SESSION.match(line.strip()):
            found.append(Session(m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return found


def find_session(sessions: Sequence[Session], target: str, p: str | None = None) -> int | None:
    """The session id of ``target`` (at portal ``p`` if given), as libvirt's check does."""
    for s in sessions:
        if s.target == target and (p is None or s.portal == p):
            return s.sid
    return None


@dataclass(frozen=True, slots=True)
class Lu:
    host: int
    channel: int
    id: int
    lun: int
    disk: str | None  # sdX, once the disk driver attached


@dataclass(frozen=True, slots=True)
class SessionDetail:
    target: str
    portal: str
    sid: int
    initiator: str | None
    state: str | None  # iSCSI Session State: LOGGED_IN, FAILED, FREE ...
    host: int | None  # SCSI host number
    lus: tuple[Lu, ...]


# iscsiadm --mode session -P 3 (open-iscsi 2.1.x layout: tabs for nesting; see tests for the
# full sample). The parts read:
#   Target: iqn.2026-11.org.kvmpool.test:plain (non-flash)
#   \tCurrent Portal: 127.0.0.1:3260,1
#   \t\tIface Initiatorname: iqn.1993-08.org.debian:01:kvmpool
#   \t\tSID: 1
#   \t\tiSCSI Session State: LOGGED_IN
#   \t\tHost Number: 2\tState: running
#   \t\tscsi2 Channel 00 Id 0 Lun: 1
#   \t\t\tAttached scsi disk sda\t\tState: running
_TARGET = re.compile(r"^Target:\s+(\S+)")
_KV = re.compile(r"^([A-Za-z][A-Za-z0-9 ]*?):\s*(.*)$")
_LU = re.compile(r"^scsi(\d+)\s+Channel\s+(\d+)\s+Id\s+(\d+)\s+Lun:\s+(\d+)")
_DISK = re.compile(r"^Attached scsi disk\s+(\S+)")


def parse_session_detail(text: str) -> list[SessionDetail]:
    found: list[SessionDetail] = []
    target: str | None = None
    cur: dict[str, str] = {}
    lus: list[Lu] = []

    def flush() -> None:
        if target is not None and "SID" in cur:
            host = cur.get("Host Number", "").split()[0] if cur.get("Host Number") else None
            found.append(SessionDetail(
                target=target, portal=cur.get("Current Portal", ""), sid=int(cur["SID"]),
                initiator=cur.get("Iface Initiatorname"),
                state=cur.get("iSCSI Session State"),
                host=int(host) if host is not None and host.isdigit() else None,
                lus=tuple(lus)))

    for raw in text.splitlines():
        line = raw.strip()
        if m := _TARGET.match(line):
            flush()
            target, cur, lus = m.group(1), {}, []
        elif m := _LU.match(line):
            lus.append(Lu(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                          int(m.group(4)), None))
        elif (m := _DISK.match(line)) and lus:
            last = lus[-1]
            lus[-1] = Lu(last.host, last.channel, last.id, last.lun, m.group(1))
        elif line.startswith("Current Portal:") and "SID" in cur:
            # a second session of the same target
            flush()
            cur, lus = {}, []
            cur["Current Portal"] = line.split(":", 1)[1].strip()
        elif m := _KV.match(line):
            key, value = m.group(1).strip(), m.group(2).strip()
            cur.setdefault(key, value.split("\t")[0].strip())
    flush()
    return found


# ------------------------------------------------------------------ errors

# open-iscsi's exit codes (include/iscsi_err.h) that a user can act on.
_EXIT: dict[int, tuple[type[KvmpoolError], str, str | None]] = {
    5: (KvmpoolError, "iSCSI login failed", "check the portal, target and initiator"),
    8: (KvmpoolError, "the portal did not answer in time", "check the host and port"),
    11: (KvmpoolError, "the target did not answer in time", "check the target"),
    12: (ToolMissing, "the kernel's iSCSI initiator (iscsi_tcp) is not loaded",
         "load it with: modprobe iscsi_tcp (a kernel without it can use iscsi-direct pools)"),
    13: (InvalidArgument, "access denied", "run as root"),
    15: (AlreadyExists, "a session to this target exists already", None),
    18: (KvmpoolError, "cannot talk to iscsid", "start it: systemctl start iscsid"),
    19: (InvalidArgument, "the target refused the login",
         "check the target IQN and the initiator IQN the target allows"),
    20: (KvmpoolError, "iscsid is not running", "start it: systemctl start iscsid"),
    21: (NotFound, "no such iSCSI node or session", None),
    24: (InvalidArgument, "CHAP authentication failed",
         "check the pool's <auth> username and the value of its secret (secret-set-value)"),
}
# Recorded on Debian 12 (open-iscsi 2.1.8, kernel without iscsi_tcp, no iscsid):
#   discovery -> exit 12, stderr ends "iscsiadm: Could not perform SendTargets discovery:
#       iSCSI driver not found. Please make sure it is loaded, and retry the operation"
#   node --login of an unknown record -> exit 21, "iscsiadm: No records found"
#   node --logout without a session  -> exit 21, "iscsiadm: No matching sessions found"
#   session                          -> exit 21, "iscsiadm: No active sessions."
# Not recorded yet (needs the VM tier; taken from open-iscsi's source):
#   discovery of a closed port       -> exit 4, "iscsiadm: cannot make connection to
#       127.0.0.1: Connection refused"


def classify(result: Completed, what: str) -> KvmpoolError:
    """One line for a failed iscsiadm run: ``<what>: <why>`` plus a hint."""
    lines = [ln.strip() for ln in result.stderr.splitlines()
             if ln.strip().startswith("iscsiadm:")]
    detail = lines[-1].removeprefix("iscsiadm:").strip() if lines else ""
    if "Connection refused" in result.stderr:
        return KvmpoolError(f"{what}: connection refused",
                            hint="check the host and port, and that the target is running")
    known = _EXIT.get(result.returncode)
    if known is not None:
        cls, why, hint = known
        return cls(f"{what}: {why}", hint=hint)
    return KvmpoolError(f"{what}: {detail or f'iscsiadm exit code {result.returncode}'}")
