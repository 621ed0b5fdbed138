"""The secret store: libvirt's XML, permissions, atomic writes, and values that never leak."""

from __future__ import annotations

import base64
import io
import os
import stat
import sys
from pathlib import Path

import pytest

from kvmpool import fileio
from kvmpool.errors import AlreadyExists, InvalidArgument, NotFound, XmlError
from kvmpool.model import Auth, SecretRef
from kvmpool.paths import Paths
from kvmpool.secrets import SecretDef, SecretStore, format_secret, parse_secret
from tests.conftest import Kvmpool

U1 = "8e0d4f2a-0b1c-4d5e-9f60-718293a4b5c6"
U2 = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
VALUE = b"Sup3r-s3cret\x00\xff!"
XML = f"""<secret ephemeral='no' private='yes'>
  <uuid>{U1}</uuid>
  <description>CHAP for the SAN</description>
  <usage type='iscsi'>
    <target>libvirtiscsi</target>
  </usage>
</secret>
"""


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    root = tmp_path / "root"
    return SecretStore(Paths(str(root / "config"), str(root / "run"), str(root / "data")))


def test_xml_round_trips_as_libvirt_formats_it() -> None:
    assert format_secret(parse_secret(XML)) == XML
    ceph = parse_secret("<secret><usage type='ceph'><name>client.admin secret</name></usage>"
                        "</secret>")
    assert ceph.usage_type == "ceph" and ceph.usage_id == "client.admin secret"
    assert ceph.usage == "ceph client.admin secret" and len(ceph.uuid) == 36
    assert "<secret ephemeral='no' private='no'>" in format_secret(ceph)
    assert parse_secret("<secret/>").usage == "Unused"


@pytest.mark.parametrize(("doc", "message"), [
    ("<secret ephemeral='maybe'/>", "invalid value of 'ephemeral'"),
    ("<secret><uuid>nope</uuid></secret>", "malformed uuid"),
    ("<secret><usage type='iscsi'/></secret>", "iscsi usage specified, but target is missing"),
    ("<secret><usage type='ceph'/></secret>", "ceph usage specified, but name is missing"),
    ("<secret><usage type='nfs'><name>x</name></usage></secret>", "unknown secret usage type"),
    ("<pool/>", "expecting <secret>"),
])
def test_bad_xml_is_one_clear_error(doc: str, message: str) -> None:
    with pytest.raises(XmlError, match=message):
        parse_secret(doc)


def test_files_are_root_only_and_the_value_is_stored_base64(store: SecretStore) -> None:
    store.define(parse_secret(XML))
    store.set_value(U1, VALUE)
    directory = Path(store.persistent_dir)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in (f"{U1}.xml", f"{U1}.base64"):
        st = (directory / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.geteuid()
    assert (directory / f"{U1}.base64").read_bytes() == base64.b64encode(VALUE)
    assert store.get_value(U1, internal=True) == VALUE
    # the definition never holds the value
    assert VALUE not in (directory / f"{U1}.xml").read_bytes()


def test_a_loosened_directory_is_tightened_again(store: SecretStore) -> None:
    store.define(parse_secret(XML))
    os.chmod(store.persistent_dir, 0o755)
    store.set_value(U1, VALUE)
    assert stat.S_IMODE(os.stat(store.persistent_dir).st_mode) == 0o700


def test_a_failed_write_keeps_the_old_value(store: SecretStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store.define(parse_secret(XML))
    store.set_value(U1, b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError):
        store.set_value(U1, b"new")
    monkeypatch.undo()
    assert store.get_value(U1, internal=True) == b"old"
    assert sorted(os.listdir(store.persistent_dir)) == [f"{U1}.base64", f"{U1}.xml"]


def test_private_values_are_only_for_pools(store: SecretStore) -> None:
    store.define(parse_secret(XML))
    store.set_value(U1, VALUE)
    with pytest.raises(InvalidArgument, match="secret is private"):
        store.get_value(U1)
    auth = Auth("chap", "alice", SecretRef(usage="libvirtiscsi"))
    assert store.value_for(auth) == VALUE
    assert store.value_for(Auth("chap", "alice", SecretRef(uuid=U1))) == VALUE
    with pytest.raises(NotFound, match="no secret with matching usage 'other'"):
        store.value_for(Auth("chap", "alice", SecretRef(usage="other")))
    with pytest.raises(NotFound, match="no secret with matching usage"):
        store.value_for(Auth("ceph", "admin", SecretRef(usage="libvirtiscsi")))


def test_usage_is_unique_and_usage_cannot_change(store: SecretStore) -> None:
    store.define(parse_secret(XML))
    store.define(parse_secret(XML))  # redefining the same secret is fine
    with pytest.raises(AlreadyExists, match=f"a secret with UUID {U1} already defined"):
        store.define(parse_secret(XML.replace(U1, U2)))
    with pytest.raises(AlreadyExists, match="is already defined for use with libvirtiscsi"):
        store.define(parse_secret(XML.replace("libvirtiscsi", "other")))


def test_a_secret_without_value_and_undefine(store: SecretStore) -> None:
    store.define(parse_secret(XML))
    with pytest.raises(NotFound, match="does not have a value"):
        store.get_value(U1, internal=True)
    store.set_value(U1, VALUE)
    store.undefine(U1)
    assert store.list() == []
    assert os.listdir(store.persistent_dir) == []
    with pytest.raises(NotFound):
        store.undefine(U1)


def test_ephemeral_secrets_never_reach_the_config_directory(store: SecretStore) -> None:
    store.define(SecretDef(uuid=U2, usage_type="ceph", usage_id="c", ephemeral=True))
    store.set_value(U2, VALUE)
    assert not os.path.exists(store.persistent_dir) or os.listdir(store.persistent_dir) == []
    assert store.get_value(U2) == VALUE
    assert [s.uuid for s in store.list()] == [U2]


# ------------------------------------------------------------------ the CLI


def _all_output(*results: object) -> str:
    return "".join(getattr(r, "out", "") + getattr(r, "err", "") for r in results)


def test_cli_story_and_the_value_never_shows(kvmpool: Kvmpool, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "s.xml"
    doc.write_text(XML.replace("private='yes'", "private='no'"))
    secret_file = tmp_path / "value"
    secret_file.write_bytes(base64.b64encode(VALUE) + b"\n")
    results = [kvmpool("secret-define", str(doc))]
    assert results[0].out == f"Secret {U1} created\n\n"
    results.append(kvmpool("secret-set-value", U1, "--file", str(secret_file)))
    assert results[-1].out == "Secret value set\n\n"
    results.append(kvmpool("secret-list"))
    assert results[-1].out == (
        " UUID                                   Usage\n"
        "------------------------------------------------------------\n"
        f" {U1}   iscsi libvirtiscsi\n\n")
    results.append(kvmpool("secret-dumpxml", U1))
    assert results[-1].out == XML.replace("private='yes'", "private='no'") + "\n"
    results.append(kvmpool("--debug", "secret-set-value", U1, "--file", "/nonexistent",
                           ok=False))
    results.append(kvmpool("--dry-run", "secret-set-value", U1, "--file", str(secret_file)))
    assert "dry run" in results[-1].out
    leaked = _all_output(*results)
    assert VALUE.decode("latin-1") not in leaked
    assert base64.b64encode(VALUE).decode() not in leaked
    # stdin, raw
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"raw value")))
    kvmpool("secret-set-value", U1, "--file", "-", "--plain")
    assert kvmpool("secret-get-value", U1).out == base64.b64encode(b"raw value").decode() + "\n\n"
    # virsh's argument form works, with virsh's warning
    got = kvmpool("secret-set-value", U1, base64.b64encode(b"x").decode())
    assert "insecure" in got.err
    assert kvmpool("secret-undefine", U1).out == f"Secret {U1} deleted\n\n"
    assert "no secret with matching uuid" in kvmpool("secret-get-value", U1, ok=False).err


def test_cli_private_secret_is_not_shown(kvmpool: Kvmpool, tmp_path: Path) -> None:
    doc = tmp_path / "s.xml"
    doc.write_text(XML)
    value = tmp_path / "v"
    value.write_bytes(base64.b64encode(VALUE))
    kvmpool("secret-define", str(doc))
    kvmpool("secret-set-value", U1, "--file", str(value))
    got = kvmpool("secret-get-value", U1, ok=False)
    assert "secret is private" in got.err and base64.b64encode(VALUE).decode() not in got.err
