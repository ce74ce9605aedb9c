"""``mgf``: every subcommand, built-in or not, comes from a plugin's ``register_commands``.

Every :class:`mgf.MgfError` becomes one line on stderr and a non-zero exit (2 for usage errors,
as argparse does, 1 otherwise); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import mgf
from mgf import MgfError, registry


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``mgf generate: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class Commands:
    """What ``register_commands(cli)`` receives: a way to add subcommands."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        """A new subcommand's parser; give it ``set_defaults(run=function)``."""
        return self._subparsers.add_parser(name, help=help, description=help)


def build_parser() -> Parser:
    parser = Parser(prog="mgf", description="Plugin-based music generation.")
    parser.add_argument("--version", action="version", version=f"mgf {mgf.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    registry.load_plugins()
    registry.pm.hook.register_commands(cli=Commands(subparsers))
    return parser


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"mgf: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 2
        return args.run(args) or 0
    except MgfError as error:
        print(f"mgf: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("mgf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
