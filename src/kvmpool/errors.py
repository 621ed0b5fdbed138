"""The error tree: every failure a user can see is a ``KvmpoolError``.

Each error carries a one-line message (what went wrong), an optional hint (what to do),
the exit code the CLI uses, and the HTTP status the service will use. Host-command
failures also carry the argv, exit code and stderr, shown only with ``--debug``.
"""

from __future__ import annotations

from collections.abc import Sequence


class KvmpoolError(Exception):
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidArgument(KvmpoolError):
    """The user asked for something malformed (bad size, bad name, bad option mix)."""

    http_status = 400


class XmlError(InvalidArgument):
    """A pool or volume document is malformed or breaks a rule of libvirt's format."""


class NotFound(KvmpoolError):
    http_status = 404


class PoolNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class AlreadyExists(KvmpoolError):
    http_status = 409


class InvalidState(KvmpoolError):
    """The operation is not valid in the object's current state (e.g. pool not active)."""

    http_status = 409


class InUse(KvmpoolError):
    http_status = 409


class Unsupported(KvmpoolError):
    """The pool type cannot do this; decided in one place (``kvmpool.caps``)."""

    http_status = 501


class ToolMissing(KvmpoolError):
    """A host program is not installed."""

    http_status = 503


class LockBusy(KvmpoolError):
    http_status = 409


class HostCommandFailed(KvmpoolError):
    """A host command exited non-zero (or timed out). argv/stderr are for --debug only."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str],
        returncode: int | None,
        stderr: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
