"""The CLI imports only the module of the command it runs: its table must be complete."""

from __future__ import annotations

import importlib
import subprocess
import sys

from kvmpool.cli.main import COMMANDS, cli


def test_table_names_every_command_of_every_module() -> None:
    registered: dict[str, str] = {}
    for module in sorted(set(COMMANDS.values())):
        before = set(cli.commands)
        importlib.import_module(f"kvmpool.cli.{module}")
        registered.update(dict.fromkeys(set(cli.commands) - before, module))
    # Commands of modules imported before this test ran (by other tests) count too.
    for name in cli.commands:
        registered.setdefault(name, COMMANDS.get(name, "?"))
    assert registered == COMMANDS


def _modules_after(args: list[str]) -> set[str]:
    code = ("import sys; from kvmpool.cli.main import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"KVMPOOL_ROOT": "/nonexistent-kvmpool-root",
                                          "PATH": "/usr/bin:/bin"})
    return set(out.stdout.split())


def test_version_imports_no_command_module() -> None:
    loaded = _modules_after(["--version"])
    assert "kvmpool.cli.main" in loaded
    assert not {f"kvmpool.cli.{m}" for m in COMMANDS.values()} & loaded
    assert "kvmpool.manager" not in loaded
    assert "lxml.etree" not in loaded


def test_a_volume_command_imports_only_its_module() -> None:
    loaded = _modules_after(["vol-list", "--help"])
    assert "kvmpool.cli.volumes" in loaded
    assert not {"kvmpool.cli.pools", "kvmpool.cli.volume_ops", "kvmpool.cli.secrets",
                "kvmpool.cli.serve", "kvmpool.cli.discovery"} & loaded
    # nor the code of pool types it does not touch
    assert not {"kvmpool.host.scsi", "kvmpool.host.multipath", "kvmpool.host.lvm",
                "kvmpool.backends.rbd", "kvmpool.xml.rng", "ctypes"} & loaded


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "kvmpool", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out or f"  {name}\n" in out, name
