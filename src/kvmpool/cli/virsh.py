"""virsh's argument rules on top of click.

virsh lets every required argument be given by position or by name: ``vol-info v --pool p``,
``vol-info --vol v --pool p`` and ``pool-define-as guest dir`` all work. Only ``--word``
tokens are options, so ``-5M`` and ``-`` are data. ``VirshCommand`` rewrites the bare
tokens into ``--name=value`` for the command's positional options, in order, then lets
click parse as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class VirshCommand(click.Command):
    def __init__(self, *args: Any, positionals: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positionals = positionals

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.rewrite(args))

    def rewrite(self, args: list[str]) -> list[str]:
        takes_value: set[str] = set()
        for param in self.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                takes_value.update(o for o in param.opts if o.startswith("--"))
        given = {a.split("=", 1)[0][2:] for a in args if a.startswith("--")}
        pending = [p for p in self.positionals if p not in given]
        out: list[str] = []
        i = 0
        only_data = False
        while i < len(args):
            arg = args[i]
            if not only_data and arg == "--":
                only_data = True
            elif not only_data and arg.startswith("--"):
                if "=" not in arg and arg in takes_value and i + 1 < len(args):
                    out.append(f"{arg}={args[i + 1]}")
                    i += 1
                else:
                    out.append(arg)
            elif pending:
                out.append(f"--{pending.pop(0)}={arg}")
            else:
                raise click.UsageError(f"unexpected data '{arg}'")
            i += 1
        return out


def command(
    group: click.Group, name: str, *positionals: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """Decorator: a virsh-style command in ``group`` whose data options are ``positionals``."""
    decorator: Callable[[Callable[..., Any]], click.Command] = group.command(
        name, cls=VirshCommand, positionals=positionals, **kwargs)
    return decorator
