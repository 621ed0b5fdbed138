"""A bounded TCP check of a storage server (NFS, CIFS, an iSCSI portal) before kvmpool asks
a host tool to talk to it: a server that is down fails in one line within a few seconds,
instead of a mount or login that hangs or ends in a message naming nothing."""

from __future__ import annotations

import errno
import os
import socket

from kvmpool.errors import InvalidState, NotFound

TIMEOUT = 5.0


def reach(host: str, port: int, *, what: str, hint: str, timeout: float = TIMEOUT) -> None:
    """Connect to ``host:port`` and hang up; raise a one-line error if that fails.

    Bounded by ``timeout`` for the connection (a name lookup is bounded by the resolver's
    own timeouts). Runs no host command.
    """
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return
    except socket.gaierror as err:
        raise NotFound(f"cannot reach {what} server '{host}': unknown host ({err.strerror})",
                       hint="check the pool's <host name=...>") from None
    except TimeoutError:
        reason = f"no answer on port {port} within {timeout:g} s"
    except OSError as err:
        reason = f"port {port}: {err.strerror or os.strerror(err.errno or errno.EIO)}"
    raise InvalidState(f"cannot reach {what} server '{host}': {reason}", hint=hint)
