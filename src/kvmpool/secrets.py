"""Secrets, as libvirt keeps them: ``<secret>`` definitions plus a value, readable by root only.

Layout (libvirt's ``/etc/libvirt/secrets``): ``<Paths.secrets>/<uuid>.xml`` holds the
definition and ``<uuid>.base64`` the value, base64-encoded. The directory is 0700 and every
file 0600, written atomically (``kvmpool.fileio.atomic_write``: a 0600 temp file, fsync,
rename), so a reader sees the old value or the new one, never half, and the value is never
readable by another user, not even for a moment. Ephemeral secrets (``ephemeral='yes'``:
libvirt keeps them in memory only) live under ``<Paths.run>/secrets``, a tmpfs as root, so
they are never written to disk either and vanish at reboot.

Values are bytes. They never appear in a message, a log line or an exception: errors name
the secret by UUID and usage only. Pools find their secret through ``<auth><secret
uuid=.../>`` or ``<secret usage=.../>`` (:meth:`SecretStore.value_for`).

No host commands are run here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kvmpool.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from kvmpool.fileio import atomic_write, fsync_dir
from kvmpool.lock import locked
from kvmpool.model import Auth, SecretRef
from kvmpool.paths import Paths
from kvmpool.xml._common import parse_uuid
from kvmpool.xml._doc import Element, attr, fail, parse_document, xnode, xstring
from kvmpool.xml._writer import Writer, esc

# libvirt's usage types and the element naming each one's usage id.
USAGE_ELEMENTS = {"volume": "volume", "ceph": "name", "iscsi": "target", "tls": "name",
                  "vtpm": "name"}
# The usage type a pool's <auth type=...> needs.
AUTH_USAGE = {"chap": "iscsi", "ceph": "ceph"}
MAX_VALUE = 64 * 1024  # virsh reads at most this much from --file
LOCK = "secrets"


class SecretNotFound(NotFound):
    pass


@dataclass(frozen=True, slots=True)
class SecretDef:
    """A ``<secret>`` document (the value is kept apart and never part of this)."""

    uuid: str
    usage_type: str | None = None  # iscsi, ceph, volume, tls, vtpm; None: no <usage>
    usage_id: str | None = None  # the iscsi target, ceph name, volume path ...
    description: str | None = None
    ephemeral: bool = False
    private: bool = False

    @property
    def usage(self) -> str:
        """virsh secret-list's Usage column."""
        if self.usage_type is None:
            return "Unused"
        return f"{self.usage_type} {self.usage_id}"


# ------------------------------------------------------------------ XML


def _yes_no(root: Element, name: str) -> bool:
    value = attr(root, name)
    if value is None:
        return False
    if value not in ("yes", "no"):
        raise fail(f"invalid value of '{name}'")
    return value == "yes"


def parse_secret(text: str | bytes) -> SecretDef:
    """libvirt's ``virSecretDefParse``; a missing UUID gets a random one."""
    root = parse_document(text, "secret")
    ephemeral = _yes_no(root, "ephemeral")
    private = _yes_no(root, "private")
    raw_uuid = xstring(root, "./uuid")
    if raw_uuid is None:
        canonical = str(uuidlib.uuid4())
    else:
        parsed = parse_uuid(raw_uuid.strip())
        if parsed is None:
            raise fail("malformed uuid element")
        canonical = parsed
    usage_type = usage_id = None
    usage = xnode(root, "./usage")
    if usage is not None:
        usage_type = attr(usage, "type")
        if usage_type is None:
            raise fail("unknown secret usage type")
        if usage_type not in USAGE_ELEMENTS:
            raise fail(f"unknown secret usage type {usage_type}")
        usage_id = xstring(usage, "./" + USAGE_ELEMENTS[usage_type])
        if usage_id is None:
            raise fail(f"{usage_type} usage specified, but "
                       f"{USAGE_ELEMENTS[usage_type]} is missing")
    return SecretDef(uuid=canonical, usage_type=usage_type, usage_id=usage_id,
                     description=xstring(root, "./description"), ephemeral=ephemeral,
                     private=private)


def format_secret(secret: SecretDef) -> str:
    """libvirt's ``virSecretDefFormat``."""
    w = Writer()
    w.open(f"<secret ephemeral='{_yn(secret.ephemeral)}' private='{_yn(secret.private)}'>")
    w.line(f"<uuid>{secret.uuid}</uuid>")
    if secret.description is not None:
        w.line(f"<description>{esc(secret.description)}</description>")
    if secret.usage_type is not None:
        w.open(f"<usage type='{secret.usage_type}'>")
        tag = USAGE_ELEMENTS[secret.usage_type]
        w.line(f"<{tag}>{esc(secret.usage_id or '')}</{tag}>")
        w.close("</usage>")
    w.close("</secret>")
    return w.text()


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"


def decode_value(data: bytes) -> bytes:
    """virsh's reading of a base64 value: characters outside the alphabet are skipped."""
    try:
        value = base64.b64decode(b"".join(data.split()), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidArgument("Invalid base64 data",
                              hint="give the value base64-encoded, or add --plain") from None
    return value


# ------------------------------------------------------------------ the store


class SecretStore:
    """Secret definitions and values under ``Paths.secrets`` (0700; files 0600)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.persistent_dir = paths.secrets
        self.ephemeral_dir = os.path.join(paths.run, "secrets")

    # -------------------------------------------------------------- helpers

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with locked(self.paths.locks, LOCK, what="the secrets"):
            yield

    @staticmethod
    def _private_dir(directory: str) -> str:
        """Make ``directory`` (0700) and tighten it if someone loosened it."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.stat(directory).st_mode & 0o077:
            os.chmod(directory, 0o700)
        return directory

    def _dir(self, secret: SecretDef) -> str:
        return self.ephemeral_dir if secret.ephemeral else self.persistent_dir

    def _files(self, secret: SecretDef) -> tuple[str, str]:
        base = os.path.join(self._dir(secret), secret.uuid)
        return base + ".xml", base + ".base64"

    # -------------------------------------------------------------- definitions

    def list(self) -> list[SecretDef]:
        """Every secret, sorted by UUID (as virsh secret-list)."""
        found: dict[str, SecretDef] = {}
        for directory in (self.persistent_dir, self.ephemeral_dir):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                if not name.endswith(".xml") or name.startswith("."):
                    continue
                with open(os.path.join(directory, name), "rb") as f:
                    secret = parse_secret(f.read())
                found[secret.uuid] = secret
        return sorted(found.values(), key=lambda s: s.uuid)

    def get(self, secret_uuid: str) -> SecretDef:
        canonical = parse_uuid(secret_uuid.strip()) or secret_uuid
        for secret in self.list():
            if secret.uuid == canonical:
                return secret
        raise SecretNotFound(
            f"Secret not found: no secret with matching uuid '{secret_uuid}'",
            hint="list secrets with: kvmpool secret-list")

    def define(self, secret: SecretDef) -> SecretDef:
        """Save a definition (new, or a redefinition of the same UUID and usage)."""
        with self._lock():
            old: SecretDef | None = None
            for other in self.list():
                if other.uuid == secret.uuid:
                    old = other
                elif (secret.usage_type is not None and other.usage_type == secret.usage_type
                      and other.usage_id == secret.usage_id):
                    raise AlreadyExists(
                        f"a secret with UUID {other.uuid} already defined for use with "
                        f"{secret.usage_id}")
            if old is not None:
                if (old.usage_type, old.usage_id) != (secret.usage_type, secret.usage_id):
                    raise AlreadyExists(
                        f"a secret with UUID {old.uuid} is already defined for use with "
                        f"{old.usage_id}")
                if old.private and not secret.private:
                    raise InvalidState("cannot change private flag on existing secret")
                if old.ephemeral != secret.ephemeral:
                    raise InvalidState("cannot change ephemeral flag on existing secret",
                                       hint="undefine it first")
            xml_path, _ = self._files(secret)
            self._private_dir(self._dir(secret))
            atomic_write(xml_path, format_secret(secret), mode=0o600)
        return secret

    def undefine(self, secret_uuid: str) -> SecretDef:
        with self._lock():
            secret = self.get(secret_uuid)
            xml_path, value_path = self._files(secret)
            for path in (value_path, xml_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            fsync_dir(self._dir(secret))
        return secret

    # -------------------------------------------------------------- values

    def set_value(self, secret_uuid: str, value: bytes) -> SecretDef:
        if len(value) > MAX_VALUE:
            raise InvalidArgument(f"secret value too long (more than {MAX_VALUE} bytes)")
        with self._lock():
            secret = self.get(secret_uuid)
            _, value_path = self._files(secret)
            self._private_dir(self._dir(secret))
            atomic_write(value_path, base64.b64encode(value).decode("ascii"), mode=0o600)
        return secret

    def get_value(self, secret_uuid: str, *, internal: bool = False) -> bytes:
        """The value. ``internal``: kvmpool's own use (pools); otherwise a private secret
        is refused, as libvirt refuses virSecretGetValue on it from outside the daemon."""
        secret = self.get(secret_uuid)
        if secret.private and not internal:
            raise InvalidArgument("Invalid secret: secret is private",
                                  hint="private secrets are only used by pools, never shown")
        return self._read_value(secret)

    def _read_value(self, secret: SecretDef) -> bytes:
        _, value_path = self._files(secret)
        try:
            with open(value_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise SecretNotFound(
                f"Secret not found: secret '{secret.uuid}' does not have a value",
                hint=f"set it with: kvmpool secret-set-value {secret.uuid} --file FILE") from None
        return base64.b64decode(data)

    # -------------------------------------------------------------- pools

    def lookup(self, ref: SecretRef, usage_type: str) -> SecretDef:
        """The secret a pool's ``<auth><secret .../>`` names."""
        if ref.uuid is not None:
            return self.get(ref.uuid)
        for secret in self.list():
            if secret.usage_type == usage_type and secret.usage_id == ref.usage:
                return secret
        raise SecretNotFound(
            f"Secret not found: no secret with matching usage '{ref.usage}'",
            hint=f"define a secret with <usage type='{usage_type}'> first: "
                 "kvmpool secret-define FILE")

    def value_for(self, auth: Auth) -> bytes:
        """The value of the secret a pool's ``<auth>`` uses (chap: iscsi, ceph: ceph)."""
        usage_type = AUTH_USAGE.get(auth.type, auth.type)
        return self._read_value(self.lookup(auth.secret, usage_type))
