"""Network file systems (netfs pools): libvirt's mount argv for NFS, CIFS and GlusterFS,
showmount's export list, a bounded reachability probe, and a mount error classifier.

libvirt builds the mount command of a netfs pool like this (its
``tests/storagepoolxml2argvdata/pool-netfs*-linux.argv``, our golden tests):

- auto: ``mount -o nodev,nosuid,noexec[,nfsvers=V][,opts] HOST:DIR TARGET`` (no ``-t``:
  ``mount -t auto`` would not find nfs, plain ``mount`` does);
- nfs: ``mount -o nodev,nosuid,noexec[,nfsvers=V][,opts] -t nfs HOST:DIR TARGET``;
- cifs: ``mount -o nodev,nosuid,noexec,guest[,opts] -t cifs //HOST/DIR TARGET``;
- glusterfs: ``mount -o nodev,nosuid,noexec,direct-io-mode=1[,opts] -t glusterfs HOST:DIR
  TARGET`` (built for the goldens only: kvmpool.caps refuses to start such a pool).

``opts`` are the pool's ``<fs:mount_opts>`` options, kept as the user wrote them.

Two deliberate differences, both for input libvirt would pass to mount and fail on: an IPv6
literal host is bracketed (``[::1]:/dir``, as mount.nfs requires), and the leading slashes
of a CIFS share are dropped (``//host/share``, never ``//host//share``).

Never hang the caller: an NFS mount of a dead server can sit in the kernel for minutes
(mount.nfs retries for 2 minutes by default, a hard mount forever). kvmpool does not touch
the user's options (no ``soft`` or ``timeo`` slipped in); it first connects to the server's
port with a short timeout (``kvmpool.host.net.reach``: nothing listening or nothing
answering is a clear one-line error within its ``TIMEOUT`` seconds), then runs mount under
the Runner's timeout, which kills it (NFS waits are killable) if the server stops
answering halfway.

Host commands it may run: mount (Debian mount; mount.nfs from nfs-common, mount.cifs from
cifs-utils), showmount (nfs-common).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from kvmpool.errors import (
    HostCommandFailed,
    InvalidArgument,
    InvalidState,
    KvmpoolError,
    NotFound,
    ToolMissing,
    Unsupported,
)
from kvmpool.host.mount import BASE_OPTIONS

MOUNT_TIMEOUT = 60.0  # mount.nfs of a server that answered the probe; killed after that
UMOUNT_TIMEOUT = 60.0
RPCBIND_PORT = 111  # showmount asks rpcbind where mountd is
SHOWMOUNT_TIMEOUT = 30.0

# The port the probe connects to when the options name none (``port=N``).
DEFAULT_PORTS = {"auto": 2049, "nfs": 2049, "cifs": 445, "glusterfs": 24007}
# The helper each format's mount needs, and its Debian package.
HELPERS = {"nfs": ("/sbin/mount.nfs", "nfs-common"), "auto": ("/sbin/mount.nfs", "nfs-common"),
           "cifs": ("/sbin/mount.cifs", "cifs-utils")}


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def source_string(host: str, directory: str, fmt: str | None) -> str:
    """>>> source_string("nas", "/export/vm", "nfs"), source_string("nas", "vm", "cifs")
    ('nas:/export/vm', '//nas/vm')
    """
    if fmt == "cifs":
        return f"//{_host(host)}/{directory.lstrip('/')}"
    return f"{_host(host)}:{directory}"


def mount_argv(source: str, target: str, fmt: str | None, protocol_ver: str | None = None,
               extra_options: Sequence[str] = ()) -> list[str]:
    """>>> mount_argv("nas:/vm", "/srv/p", "nfs", "4.1")
    ['mount', '-o', 'nodev,nosuid,noexec,nfsvers=4.1', '-t', 'nfs', 'nas:/vm', '/srv/p']
    """
    fmt = fmt or "auto"
    options = list(BASE_OPTIONS)
    if fmt == "glusterfs":
        options.append("direct-io-mode=1")
    elif fmt == "cifs":
        options.append("guest")
    elif protocol_ver:
        options.append(f"nfsvers={protocol_ver}")
    options.extend(extra_options)
    argv = ["mount", "-o", ",".join(options)]
    if fmt != "auto":
        argv += ["-t", fmt]
    return [*argv, source, target]


def umount_argv(target: str) -> list[str]:
    return ["umount", target]


def probe_port(fmt: str | None, options: Sequence[str]) -> int:
    """The port to probe: ``port=N`` from the mount options, else the format's default."""
    for option in options:
        name, _, value = option.partition("=")
        if name == "port" and value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_PORTS.get(fmt or "auto", 2049)


def require_helper(fmt: str | None) -> None:
    """Refuse early when mount has no helper for the format (mount would say it obscurely)."""
    helper = HELPERS.get(fmt or "auto")
    if helper is None:
        return
    path, package = helper
    if not os.path.exists(path) and not os.path.exists("/usr" + path):
        raise ToolMissing(f"cannot mount {fmt or 'nfs'} file systems: {path} is not installed",
                          hint=f"install it: apt-get install {package}")


def classify(err: HostCommandFailed, *, source: str, fmt: str | None,
             timeout: float = MOUNT_TIMEOUT) -> KvmpoolError:
    """Turn a failed network mount into an error the user can act on."""
    text = err.stderr
    if err.returncode is None:  # killed by the Runner's timeout
        return InvalidState(
            f"cannot mount {source}: the server did not answer within {timeout:g} s "
            "(mount was stopped)", hint="check the server; nothing was mounted")
    if "unknown filesystem type" in text:
        return Unsupported(f"this kernel cannot mount {fmt or 'nfs'} file systems",
                           hint="load its module (modprobe nfs / modprobe cifs)")
    if "access denied" in text or "Permission denied" in text:
        return InvalidArgument(
            f"cannot mount {source}: the server refused access",
            hint="check that the server exports it to this host (showmount -e HOST)")
    if "No such file or directory" in text or "does not exist" in text:
        return NotFound(f"cannot mount {source}: the server has no such export",
                        hint="list its exports: kvmpool find-storage-pool-sources-as netfs HOST")
    if "Protocol not supported" in text or "requested NFS version" in text:
        return InvalidArgument(f"cannot mount {source}: the server does not speak that NFS "
                               "version", hint="change or remove the pool's <protocol ver=...>")
    if "timed out" in text or "Connection refused" in text:
        return InvalidState(f"cannot mount {source}: {_last_line(text)}",
                            hint="check the server; nothing was mounted")
    return err


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "failed"


# ---------------------------------------------------------------- showmount

def showmount_argv(host: str) -> list[str]:
    """libvirt's discovery command, word for word."""
    return ["showmount", "--no-headers", "--exports", host]


def classify_showmount(err: HostCommandFailed, *, host: str) -> KvmpoolError:
    """showmount's failures: "clnt_create: RPC: Program not registered" (no mountd) ..."""
    if err.returncode is None:
        return InvalidState(f"'{host}' did not list its exports within {SHOWMOUNT_TIMEOUT:g} s",
                            hint="is its NFS server (rpc.mountd) running?")
    line = _last_line(err.stderr)
    if "Program not registered" in line:
        return InvalidState(f"'{host}' runs no NFS server: {line}",
                            hint="start its NFS server (rpc.mountd)")
    return InvalidState(f"cannot list the exports of '{host}': {line}")


# libvirt's regex for one export line, "DIR  CLIENTS" (the directory may hold spaces):
#   /srv/nfs 127.0.0.1
#   /export/vm images *
#   /srv/nfs4 192.168.1.0/24,10.0.0.2
_EXPORT = re.compile(r"^(/.*\S) +\S+$")


def parse_showmount(stdout: str) -> list[str]:
    """The exported directories, in showmount's order, each once."""
    found: list[str] = []
    for line in stdout.splitlines():
        m = _EXPORT.match(line)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    return found
