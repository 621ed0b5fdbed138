"""The ``iscsi`` backend: the LUNs of one target, logged in through the kernel's initiator.

Tested in the VM tier (tests/vm/test_iscsi_pool.py: tgtd, iscsid, iscsi_tcp);
tests/unit/test_backend_iscsi.py checks the command sequence with a fake iscsiadm. As
libvirt's ``storage_backend_iscsi.c``:

- start: if no session to the target exists: a TCP connection to the portal first (a
  portal nobody listens on is a one-line error at once; iscsid would retry for a minute);
  with ``<initiator><iqn>``, an iface named after the IQN (``iscsiadm.iface_name``); a node
  record (``--op new``) allowing ``LOGIN_RETRIES`` login attempts, so that iscsid gives up
  before the login's timeout kills iscsiadm; CHAP written into that record (0600, never in
  argv: see ``kvmpool.host.iscsiadm``); ``--login``. A failed login deletes the record
  again, so no password is left on disk.
- stop: ``--logout``, then the node record is deleted (libvirt keeps it, with the CHAP
  password in clear; kvmpool does not leave it behind).
- check: a session to the target exists (``iscsiadm --mode session``).
- refresh: rescan the session (``-r SID -R``), list its LUs (``-P 3``); each disk becomes
  volume ``unit:<channel>:<id>:<lun>``, its path the stable link in the pool's target
  directory (default ``/dev/disk/by-path``; LUs without one are skipped, as libvirt does),
  sizes from sysfs. Pool capacity = allocation = the sum, available 0.
- a target that stopped answering: the kernel's session state (sysfs) is FAILED; refresh
  and every volume lookup then fail at once with one line instead of rescanning or reading
  (both would wait up to the replacement timeout). Nothing is changed: the kernel keeps
  retrying, and a failed refresh makes the manager stop the pool (docs/iscsi.md).

May run: iscsiadm (open-iscsi), udevadm settle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from kvmpool.backends import lun
from kvmpool.backends.base import Context, CreateOptions, Overwrite
from kvmpool.copy import Progress
from kvmpool.errors import HostCommandFailed, InvalidArgument, KvmpoolError
from kvmpool.fileio import atomic_write
from kvmpool.host import iscsiadm, net, udev
from kvmpool.host.links import links_to
from kvmpool.host.run import Completed
from kvmpool.model import PoolDef, VolTarget, VolType, VolumeDef

DEFAULT_TARGET = "/dev/disk/by-path"
TIMEOUT = 30.0
PROBE_TIMEOUT = 5.0  # connecting to the portal before a login
# Login attempts iscsid makes (iscsid.conf: 8): 3 x login_timeout (15 s) stays within
# iscsiadm.LOGIN_TIMEOUT.
LOGIN_RETRIES = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    host: str
    port: int | None
    target: str
    initiator: str | None

    @property
    def portal(self) -> str:
        return iscsiadm.portal(self.host, self.port)


def where(pool: PoolDef) -> Where:
    src = pool.source
    if not src.hosts:
        raise InvalidArgument(f"pool '{pool.name}' has no source host",
                              hint="give one: <source><host name='H' port='3260'/>")
    if not src.devices:
        raise InvalidArgument(f"pool '{pool.name}' has no target IQN",
                              hint="give one: <source><device path='iqn....'/>")
    return Where(src.hosts[0].name, src.hosts[0].port, src.devices[0].path, src.initiator_iqn)


class IscsiBackend:
    nodes_dirs: tuple[str, ...] = iscsiadm.NODES_DIRS
    sys_block = "/sys/block"
    sys_session = "/sys/class/iscsi_session"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ helpers

    def _run(self, argv: list[str], what: str, *, changes: bool = True,
             ok: tuple[int, ...] = (0,), timeout: float = TIMEOUT,
             secrets: tuple[str, ...] = ()) -> Completed:
        try:
            result = self.ctx.runner.run(argv, changes=changes, check=False, timeout=timeout,
                                         secrets=secrets)
        except HostCommandFailed as err:
            if err.returncode is not None:
                raise
            raise KvmpoolError(f"{what}: no answer within {timeout:g} s",
                               hint="check the target, the network and iscsid") from None
        if result.returncode not in ok:
            stderr = result.stderr
            for secret in secrets:
                stderr = stderr.replace(secret, "<redacted>")
            raise iscsiadm.classify(Completed(result.argv, result.returncode, "", stderr), what)
        return result

    def _sid(self, w: Where) -> int | None:
        result = self._run(iscsiadm.sessions_argv(), "cannot list iSCSI sessions",
                           changes=False, ok=(0, 21))
        return iscsiadm.find_session(iscsiadm.parse_sessions(result.stdout), w.target)

    def _chap(self, pool: PoolDef) -> tuple[str, str] | None:
        auth = pool.source.auth
        if auth is None:
            return None
        if auth.type != "chap":
            raise InvalidArgument(f"pool '{pool.name}': iSCSI supports only chap "
                                  f"authentication, not {auth.type}")
        if self.ctx.secret is None:
            raise KvmpoolError(f"pool '{pool.name}' uses CHAP but no secret store is at hand")
        try:
            return auth.username, self.ctx.secret(auth).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"pool '{pool.name}': the CHAP secret is not text") from None

    def _set_chap(self, w: Where, iface: str, username: str, password: str) -> None:
        """CHAP into the node record file; iscsiadm's argv form only if there is none."""
        for path in iscsiadm.node_record_paths(w.target, w.host, w.port, iface=iface,
                                               nodes_dirs=self.nodes_dirs):
            if os.path.isfile(path):
                if self.ctx.runner.change(f"write the CHAP settings into {path} (0600)"):
                    with open(path, encoding="utf-8") as f:
                        record = f.read()
                    atomic_write(path, iscsiadm.record_with_chap(record, username, password),
                                 mode=0o600)
                return
        for argv in iscsiadm.chap_update_argvs(w.portal, w.target, username, password):
            self._run(argv, f"cannot set CHAP for iSCSI target {w.target}",
                      secrets=(password,))

    @staticmethod
    def _probe(w: Where) -> None:
        """A portal nobody listens on would keep iscsid retrying for a minute: say so now."""
        net.reach(w.host, w.port or iscsiadm.DEFAULT_PORT, what="iSCSI", timeout=PROBE_TIMEOUT,
                  hint="check the host and port, and that the target is running; "
                       "nothing was changed")

    # ------------------------------------------------------------ core

    def check(self, pool: PoolDef) -> bool:
        return self._sid(where(pool)) is not None

    def build(self, pool: PoolDef, overwrite: Overwrite) -> None:
        """Nothing to build."""

    def start(self, pool: PoolDef) -> None:
        w = where(pool)
        if self._sid(w) is not None:
            return
        self._probe(w)
        what = f"cannot log in to iSCSI target {w.target} at {w.portal}"
        iface = "default"
        if w.initiator is not None:
            iface = iscsiadm.iface_name(w.initiator)
            self._run(iscsiadm.iface_new_argv(iface), what, ok=(0, 15))
            self._run(iscsiadm.iface_initiator_argv(iface, w.initiator), what)
        new = iscsiadm.node_new_argv(w.portal, w.target)
        self._run(new + (["--interface", iface] if w.initiator else []), what, ok=(0, 15))
        try:
            # iscsid gives up by itself before our timeout kills iscsiadm (a killed
            # iscsiadm leaves iscsid retrying, and a late login would be a leaked session)
            self._run(iscsiadm.node_update_argv(w.portal, w.target,
                                                "node.session.initial_login_retry_max",
                                                str(LOGIN_RETRIES)), what)
            chap = self._chap(pool)
            if chap is not None:
                self._set_chap(w, iface, *chap)
            self._run(iscsiadm.login_argv(w.portal, w.target,
                                          iface if w.initiator else None),
                      what, timeout=iscsiadm.LOGIN_TIMEOUT)
        except BaseException:
            with contextlib.suppress(KvmpoolError):
                self._run(iscsiadm.node_delete_argv(w.portal, w.target), what, ok=(0, 21))
            raise

    def stop(self, pool: PoolDef) -> None:
        w = where(pool)
        what = f"cannot log out of iSCSI target {w.target} at {w.portal}"
        self._run(iscsiadm.logout_argv(w.portal, w.target), what, ok=(0, 21))
        self._run(iscsiadm.node_delete_argv(w.portal, w.target), what, ok=(0, 21))

    def delete(self, pool: PoolDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting an iscsi pool")

    def refresh(self, pool: PoolDef) -> PoolDef:
        vols = self._volumes(pool, rescan=True)
        total = sum(v.capacity or 0 for v in vols)
        return dataclasses.replace(pool, capacity=total, allocation=total, available=0)

    def _volumes(self, pool: PoolDef, *, rescan: bool = False) -> list[VolumeDef]:
        w = where(pool)
        sid = self._sid(w)
        if sid is None:
            raise KvmpoolError(f"no iSCSI session to target {w.target}",
                               hint=f"restart the pool: kvmpool pool-destroy {pool.name}; "
                                    f"kvmpool pool-start {pool.name}")
        # A session whose target stopped answering is FAILED: the kernel holds its I/O (and
        # a rescan's) until the target is back or replacement_timeout ends. Say so at once.
        self._require_answering(pool, w, sid, self._session_state(sid), refresh=rescan)
        what = f"cannot scan iSCSI target {w.target}"
        if rescan:
            self._run(iscsiadm.rescan_argv(sid), what, changes=False)
            udev.settle(self.ctx.runner)
        detail = self._run(["iscsiadm", "--mode", "session", "-r", str(sid), "-P", "3"],
                           what, changes=False)
        sessions = iscsiadm.parse_session_detail(detail.stdout)
        for session in sessions:
            self._require_answering(pool, w, sid, session.state, refresh=rescan)
        target_dir = pool.target.path or DEFAULT_TARGET
        links = self._links(target_dir)
        vols = []
        for session in sessions:
            for lu in session.lus:
                if lu.disk is None:
                    continue
                path = links.get(lu.disk)
                if path is None:
                    continue  # no stable name: skipped, as libvirt does
                size = self._size(lu.disk)
                vols.append(VolumeDef(name=f"unit:{lu.channel}:{lu.id}:{lu.lun}",
                                      type=VolType.BLOCK, key=path, capacity=size,
                                      allocation=size, target=VolTarget(path=path)))
        return vols

    def _session_state(self, sid: int) -> str | None:
        """The kernel's state of session ``sid`` (LOGGED_IN, FAILED, FREE), None if unknown."""
        try:
            with open(os.path.join(self.sys_session, f"session{sid}", "state"),
                      encoding="ascii") as f:
                return f.read().strip() or None
        except OSError:
            return None

    @staticmethod
    def _require_answering(pool: PoolDef, w: Where, sid: int, state: str | None, *,
                           refresh: bool) -> None:
        if state is None or state == "LOGGED_IN":
            return
        if refresh:  # pool-refresh, pool-info: the manager stops a pool whose pool-refresh
            # fails (libvirt's rule)
            hint = (f"check the target and the network; a failed pool-refresh logs out and "
                    f"stops the pool; kvmpool pool-start {pool.name} logs in again")
        else:
            hint = (f"check the target and the network; the kernel keeps retrying; "
                    f"to give up and log out: kvmpool pool-destroy {pool.name}")
        raise KvmpoolError(f"iSCSI target {w.target} at {w.portal} does not answer "
                           f"(session {sid} is {state})", hint=hint)

    @staticmethod
    def _links(target_dir: str) -> dict[str, str]:
        """Kernel name (sda) -> the stable link in ``target_dir`` (by-path) naming it."""
        ours = links_to(target_dir, lambda name: "-iscsi-" in name and "-part" not in name)
        return {os.path.basename(real): link for real, link in ours.items()}

    def _size(self, disk: str) -> int:
        with open(os.path.join(self.sys_block, disk, "size"), encoding="ascii") as f:
            return int(f.read().strip()) * 512

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        return self._volumes(pool)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        """By name (``unit:C:I:L``), key or path, or the link's name in the target directory
        (the manager's lookup by path)."""
        return lun.find(self._volumes(pool), name)

    def create_volume(self, pool: PoolDef, vol: VolumeDef, options: CreateOptions) -> None:
        raise AssertionError("caps.TABLE forbids creating iscsi volumes")

    def delete_volume(self, pool: PoolDef, vol: VolumeDef) -> None:
        raise AssertionError("caps.TABLE forbids deleting iscsi volumes")

    # optional abilities (declared in caps.TABLE)

    def wipe_volume(
        self, pool: PoolDef, vol: VolumeDef, algorithm: str, progress: Progress | None
    ) -> None:
        lun.wipe(self.ctx, vol, algorithm, progress)
