"""The ``netfs`` backend: an NFS export or a CIFS share mounted on the target directory.

``NetfsBackend`` is an ``FsBackend`` (itself a ``DirBackend``) with a network source: volumes,
sizes, pool-delete and the mount bookkeeping (already mounted: nothing to do; something else
mounted there: refused; stop unmounts only our own mount) are that code. This module changes:

- the source: ``HOST:DIR`` (nfs, auto) or ``//HOST/DIR`` (cifs), from the pool's one
  ``<host>`` and its ``<dir>``; a mount entry is ours when host and path are the same;
- build: the target directory only, as ``dir`` (libvirt: there is no device to format);
- start: a bounded probe of the server (``kvmpool.host.net.reach``: a TCP connect to its
  port), then libvirt's mount argv (``host.nfs.mount_argv``: ``-o nodev,nosuid,noexec
  [,nfsvers=V][,fs:mount_opts]``, ``-t nfs|cifs``, none for auto) under a timeout, so a dead
  server is a one-line error in seconds and a server that stops answering mid-mount one
  within ``host.nfs.MOUNT_TIMEOUT``; the user's mount options are never changed;
- refresh, volume listing and stop probe the server first: on a hard NFS mount of a dead
  server a ``statvfs`` or ``umount`` would block the CLI for as long as the server is away.

GlusterFS (``<format type='glusterfs'/>``) parses and formats, but ``kvmpool.caps`` refuses
to run such a pool: kvmpool does not mount GlusterFS.

May run: mount, umount (mount.nfs, mount.cifs), and qemu-img for image volumes.
"""

from __future__ import annotations

import os

from kvmpool.backends.dir import DirBackend, target_of
from kvmpool.backends.fs import FsBackend
from kvmpool.errors import HostCommandFailed, InvalidArgument
from kvmpool.host import mount, net, nfs
from kvmpool.model import PoolDef, SourceHost, VolumeDef


def the_server(pool: PoolDef) -> SourceHost:
    if len(pool.source.hosts) != 1:
        raise InvalidArgument(
            f"pool '{pool.name}' (netfs) needs exactly one source host, "
            f"it has {len(pool.source.hosts)}",
            hint="give one <host name='...'/> in <source> (pool-define-as --source-host)")
    return pool.source.hosts[0]


def netfs_source(pool: PoolDef) -> str:
    """``HOST:DIR`` or ``//HOST/DIR``: what the pool mounts."""
    if not pool.source.dir:
        raise InvalidArgument(f"pool '{pool.name}' (netfs) has no source directory",
                              hint="give <dir path='...'/> in <source> (--source-path)")
    return nfs.source_string(the_server(pool).name, pool.source.dir, pool.source.format)


def mount_argv(pool: PoolDef) -> list[str]:
    """The pool's mount command, as libvirt builds it (tests compare with libvirt's files)."""
    target = pool.target.path or ""
    return nfs.mount_argv(netfs_source(pool), target, pool.source.format,
                          pool.source.protocol_ver, pool.fs_mount_opts)


def _split(source: str) -> tuple[str, str]:
    """``(host, path)`` of ``host:/p``, ``[v6]:/p`` or ``//host/p``, normalised for comparing."""
    if source.startswith("//"):
        host, _, path = source[2:].partition("/")
        path = "/" + path
    elif source.startswith("["):
        host, _, path = source[1:].partition("]:")
    else:
        host, _, path = source.partition(":")
    return host.strip("[]").lower(), os.path.normpath(path or "/")


class NetfsBackend(FsBackend):

    umount_timeout = nfs.UMOUNT_TIMEOUT
    build = DirBackend.build  # a directory; --overwrite has no device to format

    def _mount(self, pool: PoolDef) -> mount.MountEntry | None:
        """As fs, but the target itself is never stat'ed: on a dead server's hard mount a
        stat of its root blocks. Only its parent directory is resolved."""
        target = target_of(pool)
        parent, name = os.path.split(os.path.abspath(target))
        return mount.mounted_at(mount.read_mountinfo(),
                                os.path.join(os.path.realpath(parent), name))

    def _source(self, pool: PoolDef) -> str:
        return netfs_source(pool)

    def _is_source(self, entry: mount.MountEntry, pool: PoolDef) -> bool:
        return _split(entry.source) == _split(self._source(pool))

    def _probe(self, pool: PoolDef, hint: str | None = None) -> None:
        fmt = pool.source.format or "auto"
        net.reach(the_server(pool).name, nfs.probe_port(fmt, pool.fs_mount_opts),
                  what="CIFS" if fmt == "cifs" else "NFS",
                  hint=hint or "check that the server is up; nothing was mounted")

    def _mount_source(self, pool: PoolDef, source: str, target: str) -> None:
        fmt = pool.source.format or "auto"
        self._probe(pool)
        nfs.require_helper(fmt)
        try:
            self.ctx.runner.run(mount_argv(pool), timeout=nfs.MOUNT_TIMEOUT)
        except HostCommandFailed as err:
            raise nfs.classify(err, source=source, fmt=fmt, timeout=nfs.MOUNT_TIMEOUT) from None

    def stop(self, pool: PoolDef) -> None:
        if self._mounted(pool):  # umount of a dead server's mount would block
            self._probe(pool, hint="to drop the mount anyway: umount -f -l "
                                   f"{pool.target.path} (unwritten data is lost)")
        super().stop(pool)

    def refresh(self, pool: PoolDef) -> PoolDef:
        if self._mounted(pool):
            self._probe(pool, hint="its files cannot be read until the server is back")
        return super().refresh(pool)

    def list_volumes(self, pool: PoolDef, *, details: bool) -> list[VolumeDef]:
        if self._mounted(pool):
            self._probe(pool, hint="its files cannot be read until the server is back")
        return super().list_volumes(pool, details=details)

    def volume(self, pool: PoolDef, name: str) -> VolumeDef | None:
        if self._mounted(pool):
            self._probe(pool, hint="its files cannot be read until the server is back")
        return super().volume(pool, name)
