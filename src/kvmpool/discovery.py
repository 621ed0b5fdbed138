"""find-storage-pool-sources: the pool sources a host offers, per pool type.

Like the backends, each finder lives with its host tool and is imported on first use; which
types can look at all is decided in ``kvmpool.caps`` (``require_discovery``).

- iscsi, iscsi-direct: SendTargets discovery of ``--host`` (and ``--port``) with libiscsi's
  ``iscsi-ls``, a user-space initiator (no kernel module, no iscsid, nothing persisted: not
  even the node records ``iscsiadm -m discovery`` would write). One ``<source>`` per target,
  with the host and initiator of the request, as libvirt answers.
- netfs: the exports of ``--host`` from ``showmount --no-headers --exports HOST`` (libvirt's
  command and line regex), one ``<source>`` with host, dir and format nfs per export. The
  host's rpcbind port (111) is probed first, with a short timeout, so a dead host is a clear
  error in seconds. libvirt also asks the gluster CLI; kvmpool does not (no GlusterFS).
- logical: every volume group with its physical volumes, from ``pvs`` (JSON report), one
  ``<source>`` per VG with its PVs as devices, the VG as name and format lvm2; PVs in no
  VG are left out (as libvirt). Needs no ``--host``; nothing is activated or scanned.
"""

from __future__ import annotations

import os

from kvmpool import caps
from kvmpool.errors import HostCommandFailed, InvalidArgument
from kvmpool.host import libiscsi
from kvmpool.host.run import Runner
from kvmpool.model import PoolSource, PoolType, SourceDevice, SourceHost


def find_sources(pool_type: PoolType, spec: PoolSource, runner: Runner) -> list[PoolSource]:
    """May run: ``iscsi-ls``, ``showmount``, ``pvs`` (all read-only)."""
    caps.require_discovery(pool_type)
    if pool_type is PoolType.LOGICAL:
        return _logical(runner)
    if not spec.hosts:
        raise InvalidArgument(f"hostname must be specified for {pool_type} sources",
                              hint="give it with --host H")
    host = spec.hosts[0]
    if pool_type is PoolType.NETFS:
        return _netfs(host.name, runner)
    if pool_type is PoolType.ISCSI_DIRECT and not spec.initiator_iqn:
        raise InvalidArgument("missing initiator IQN",
                              hint="iscsi-direct discovery needs --initiator IQN")
    seen: list[str] = []
    for target in libiscsi.discover(runner, host.name, host.port, spec.initiator_iqn):
        if target.iqn not in seen:
            seen.append(target.iqn)
    return [PoolSource(hosts=(host,), devices=(SourceDevice(path=iqn),),
                       initiator_iqn=spec.initiator_iqn) for iqn in seen]


def _netfs(host: str, runner: Runner) -> list[PoolSource]:
    from kvmpool.host import net, nfs  # imported on first use, as the backends

    net.reach(host, nfs.RPCBIND_PORT, what="NFS", hint="is the server up and running rpcbind?")
    try:
        result = runner.run(nfs.showmount_argv(host), changes=False,
                            timeout=nfs.SHOWMOUNT_TIMEOUT)
    except HostCommandFailed as err:
        raise nfs.classify_showmount(err, host=host) from None
    return [PoolSource(hosts=(SourceHost(host),), dir=path, format="nfs")
            for path in nfs.parse_showmount(result.stdout)]


def _logical(runner: Runner) -> list[PoolSource]:
    from kvmpool.host.lvm import Lvm

    lvm = Lvm(runner, config=os.environ.get("KVMPOOL_LVM_CONFIG") or None)
    groups: dict[str, list[str]] = {}
    for pv in lvm.pvs():
        if pv.vg:
            groups.setdefault(pv.vg, []).append(pv.name)
    return [PoolSource(devices=tuple(SourceDevice(path=p) for p in paths), name=vg,
                       format="lvm2") for vg, paths in groups.items()]
