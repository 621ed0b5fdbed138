"""find-storage-pool-sources: the pool sources a host offers, per pool type.

Like the backends, each finder lives with its host tool and is imported on first use; which
types can look at all is decided in ``kvmpool.caps`` (``require_discovery``).

- iscsi, iscsi-direct: SendTargets discovery of ``--host`` (and ``--port``) with libiscsi's
  ``iscsi-ls``, a user-space initiator (no kernel module, no iscsid, nothing persisted: not
  even the node records ``iscsiadm -m discovery`` would write). One ``<source>`` per target,
  with the host and initiator of the request, as libvirt answers.
"""

from __future__ import annotations

from kvmpool import caps
from kvmpool.errors import InvalidArgument
from kvmpool.host import libiscsi
from kvmpool.host.run import Runner
from kvmpool.model import PoolSource, PoolType, SourceDevice


def find_sources(pool_type: PoolType, spec: PoolSource, runner: Runner) -> list[PoolSource]:
    """May run: ``iscsi-ls`` (read-only)."""
    caps.require_discovery(pool_type)
    if not spec.hosts:
        raise InvalidArgument(f"hostname must be specified for {pool_type} sources",
                              hint="give it with --host H")
    host = spec.hosts[0]
    if pool_type is PoolType.ISCSI_DIRECT and not spec.initiator_iqn:
        raise InvalidArgument("missing initiator IQN",
                              hint="iscsi-direct discovery needs --initiator IQN")
    seen: list[str] = []
    for target in libiscsi.discover(runner, host.name, host.port, spec.initiator_iqn):
        if target.iqn not in seen:
            seen.append(target.iqn)
    return [PoolSource(hosts=(host,), devices=(SourceDevice(path=iqn),),
                       initiator_iqn=spec.initiator_iqn) for iqn in seen]
