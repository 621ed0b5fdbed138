"""Persistent pool definitions, autostart marks and the state of active pools.

Layout (as libvirt's, under kvmpool's own directories, see ``kvmpool.paths``):

- ``<config>/storage/<name>.xml``: the persistent definition (libvirt pool XML);
- ``<config>/storage/autostart/<name>.xml``: a symlink to it when the pool autostarts;
- ``<run>/storage/<name>.xml``: ``<poolstate>`` with the live definition of an active pool.

Every write is atomic (``kvmpool.fileio.atomic_write``) and goes through the runner, so a
``--dry-run`` prints it instead. A stored file that no longer parses is reported, not fatal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from kvmpool import xml
from kvmpool.errors import KvmpoolError
from kvmpool.fileio import atomic_write, remove
from kvmpool.host.run import Runner
from kvmpool.model import PoolDef
from kvmpool.paths import Paths

HEADER = """<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  kvmpool pool-edit {name}
or other application using the kvmpool library.
-->

"""


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """What kvmpool knows of one pool: its persistent and live definitions."""

    config: PoolDef | None  # persistent definition; None for a transient pool
    live: PoolDef | None  # definition the pool was started with; None when inactive
    autostart: bool = False

    @property
    def persistent(self) -> bool:
        return self.config is not None

    @property
    def active(self) -> bool:
        return self.live is not None

    @property
    def current(self) -> PoolDef:
        pool = self.live or self.config
        assert pool is not None
        return pool

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def uuid(self) -> str:
        return self.current.uuid


class Store:
    def __init__(
        self, paths: Paths, runner: Runner, warn: Callable[[str], None] | None = None
    ) -> None:
        self.paths = paths
        self.runner = runner
        self.warn = warn or (lambda _msg: None)

    # ------------------------------------------------------------ reading

    def load_all(self) -> list[PoolRecord]:
        configs = self._load_dir(self.paths.pools, wrapped=False)
        states = self._load_dir(self.paths.state, wrapped=True)
        records: list[PoolRecord] = []
        for name, config in configs.items():
            live = states.pop(name, None)
            if live is not None and live.uuid != config.uuid:
                self.warn(f"state of pool '{name}' belongs to another uuid; ignored")
                live = None
            records.append(PoolRecord(config, live, self._autostart(name)))
        for live in states.values():
            records.append(PoolRecord(None, live, False))
        return records

    def _load_dir(self, directory: str, *, wrapped: bool) -> dict[str, PoolDef]:
        found: dict[str, PoolDef] = {}
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return found
        for entry in names:
            if not entry.endswith(".xml") or entry.startswith("."):
                continue
            path = os.path.join(directory, entry)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
                pool = xml.parse_pool(unwrap_state(data) if wrapped else data)
            except (OSError, KvmpoolError) as err:
                self.warn(f"ignoring {path}: {err}")
                continue
            if pool.name + ".xml" != entry:
                self.warn(f"ignoring {path}: it defines pool '{pool.name}'")
                continue
            found[pool.name] = pool
        return found

    def _autostart(self, name: str) -> bool:
        link = os.path.join(self.paths.autostart, name + ".xml")
        try:
            target = os.readlink(link)
        except OSError:
            return False
        target = os.path.join(self.paths.autostart, target)
        return os.path.realpath(target) == os.path.realpath(self.config_path(name))

    # ------------------------------------------------------------ writing

    def config_path(self, name: str) -> str:
        return os.path.join(self.paths.pools, name + ".xml")

    def state_path(self, name: str) -> str:
        return os.path.join(self.paths.state, name + ".xml")

    def save_config(self, pool: PoolDef) -> None:
        path = self.config_path(pool.name)
        if self.runner.change(f"write {path}"):
            atomic_write(path, HEADER.format(name=pool.name) + xml.format_pool(pool))

    def remove_config(self, name: str) -> None:
        self.set_autostart(name, False)
        path = self.config_path(name)
        if self.runner.change(f"remove {path}"):
            remove(path)

    def set_autostart(self, name: str, on: bool) -> None:
        link = os.path.join(self.paths.autostart, name + ".xml")
        if on:
            if not self.runner.change(f"link {link} -> {self.config_path(name)}"):
                return
            os.makedirs(self.paths.autostart, mode=0o755, exist_ok=True)
            tmp = link + ".tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.path.join("..", name + ".xml"), tmp)
            os.replace(tmp, link)
        elif os.path.lexists(link) and self.runner.change(f"remove {link}"):
            remove(link)

    def save_state(self, pool: PoolDef) -> None:
        path = self.state_path(pool.name)
        if self.runner.change(f"write {path}"):
            atomic_write(path, HEADER.format(name=pool.name) + wrap_state(pool))

    def remove_state(self, name: str) -> None:
        path = self.state_path(name)
        if os.path.exists(path) and self.runner.change(f"remove {path}"):
            remove(path)


def wrap_state(pool: PoolDef) -> str:
    inner = "".join("  " + line + "\n" for line in xml.format_pool(pool).splitlines())
    return "<poolstate>\n" + inner + "</poolstate>\n"


def unwrap_state(data: bytes) -> bytes:
    """The ``<pool>`` inside a ``<poolstate>`` document (parsed without entities or network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    pool = root.find("pool")
    if root.tag != "poolstate" or pool is None:
        raise KvmpoolError("not a pool state document")
    return bytes(etree.tostring(pool))
