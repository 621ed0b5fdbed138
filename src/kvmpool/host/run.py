"""The one way kvmpool runs host programs and changes files: ``Runner``.

- argv lists only, never a shell; ``LC_ALL=C``; a timeout on every call;
- secrets are redacted from anything printed or logged;
- ``dry_run``: commands that change the system (``changes=True``) and file changes
  (``Runner.change``) are printed instead of done; read-only queries still run;
- every command is kept in ``history`` so ``--debug`` can show argv, exit code and stderr.

Tests inject a fake runner by subclassing and overriding ``_execute``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kvmpool.errors import HostCommandFailed, ToolMissing

DEFAULT_TIMEOUT = 600.0

# Which Debian package brings each program, for ToolMissing hints.
PACKAGES: Mapping[str, str] = {
    "qemu-img": "qemu-utils",
    "pvcreate": "lvm2",
    "vgcreate": "lvm2",
    "lvcreate": "lvm2",
    "lvs": "lvm2",
    "vgs": "lvm2",
    "pvs": "lvm2",
    "parted": "parted",
    "sfdisk": "fdisk",
    "mount": "mount",
    "umount": "mount",
    "mkfs.xfs": "xfsprogs",
    "mkfs.btrfs": "btrfs-progs",
    "mkfs.vfat": "dosfstools",
    "mkfs.ext4": "e2fsprogs",
    "blkid": "util-linux",
    "iscsiadm": "open-iscsi",
    "rbd": "ceph-common",
    "scrub": "scrub",
    "showmount": "nfs-common",
}


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(slots=True)
class Runner:
    dry_run: bool = False
    echo: Callable[[str], None] | None = None
    history: list[Completed] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        changes: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        input: str | None = None,
        check: bool = True,
        secrets: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
    ) -> Completed:
        """Run ``argv``. ``changes`` marks a command that alters the system (skipped in dry-run).

        ``env``: variables set (None: removed) for this command only, on top of this
        process's environment: the way to hand a tool a secret without putting it in argv
        (pass it in ``secrets`` too). Never shown, not even by --debug.
        """
        argv = tuple(argv)
        if changes and self.dry_run:
            self._say("would run: " + self.show(argv, secrets))
            return Completed(argv, 0, "", "")
        if env is None:
            result = self._execute(argv, timeout=timeout, input=input)
        else:
            result = self._execute(argv, timeout=timeout, input=input, env=env)
        shown = Completed(
            tuple(_redact(a, secrets) for a in argv),
            result.returncode,
            _redact(result.stdout, secrets),
            _redact(result.stderr, secrets),
        )
        self.history.append(shown)
        if check and result.returncode != 0:
            raise HostCommandFailed(
                command_error(shown),
                argv=shown.argv,
                returncode=shown.returncode,
                stderr=shown.stderr,
            )
        return result

    def change(self, description: str) -> bool:
        """Announce a file change. Returns False in dry-run: the caller must skip the change."""
        if self.dry_run:
            self._say("would " + description)
            return False
        return True

    def _say(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)

    @staticmethod
    def show(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
        return " ".join(shlex.quote(_redact(a, secrets)) for a in argv)

    def _execute(
        self, argv: tuple[str, ...], *, timeout: float, input: str | None,
        env: Mapping[str, str | None] | None = None,
    ) -> Completed:
        full = dict(os.environ, LC_ALL="C", LANG="C")
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env=full,
                stdin=None if input is not None else subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            package = PACKAGES.get(os.path.basename(argv[0]))
            hint = f"install it: apt-get install {package}" if package else None
            raise ToolMissing(f"'{argv[0]}' is not installed", hint=hint) from None
        except subprocess.TimeoutExpired as err:
            stderr = err.stderr if isinstance(err.stderr, str) else ""
            raise HostCommandFailed(
                f"{argv[0]} did not finish within {timeout:g} s",
                argv=argv,
                returncode=None,
                stderr=stderr,
            ) from None
        return Completed(argv, proc.returncode, proc.stdout, proc.stderr)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def command_error(result: Completed) -> str:
    """One line naming the program and its last meaningful stderr line."""
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    detail = lines[-1] if lines else f"exit code {result.returncode}"
    return f"{os.path.basename(result.argv[0])} failed: {detail}"
