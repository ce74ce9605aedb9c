"""``mgf``: every subcommand, built-in or not, comes from a plugin's ``register_commands``.

Exit codes (docs/contract.md): 0 when every requested output was written, 2 for usage errors
(unknown names, bad or inapplicable options, contradictory flags), 1 for everything else
(input, bundle, plugin failures).  Every error is one line on stderr; ``--debug`` or
``MGF_DEBUG=1`` adds the traceback.  SIGINT exits with 130 and SIGTERM/SIGHUP with 128 + the
signal, after removing any half-written output.  A reader of stdout that leaves (``| head``) stops
the listing, not the work.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import traceback
import warnings

import mgf
from mgf import MgfError
from mgf.contract import registry
from mgf.contract.boundary import guard, printable
from mgf.errors import ContractWarning
from mgf.files import STOP_SIGNALS


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``mgf generate: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class Commands:
    """What ``register_commands(cli)`` receives: a way to add subcommands."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers
        self.origin = None  # the plugin whose hook is running, so that its commands run inside its boundary

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        """A new subcommand's parser; give it ``set_defaults(run=function)``."""
        parser = self._subparsers.add_parser(name, help=help, description=help)
        parser.set_defaults(_origin=self.origin)
        if self.origin is not None:
            registry.commands.setdefault(self.origin.plugin, []).append(name)
        return parser


def build_parser() -> Parser:
    parser = Parser(prog="mgf", description="Plugin-based music generation.")
    parser.add_argument("--version", action="version", version=f"mgf {mgf.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also MGF_DEBUG=1)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    commands = Commands(subparsers)
    registry.load_plugins()
    for impl in registry.hook_implementations("register_commands"):
        commands.origin = registry.origin_of_impl(impl, "commands", impl.plugin_name)
        try:
            with guard(commands.origin, "register_commands"):
                impl.function(**{arg: commands for arg in impl.argnames})
        except (MgfError, argparse.ArgumentError) as error:
            registry.skip(f"plugin {impl.plugin_name!r} ({commands.origin.distribution}) "
                                            f"skipped: register_commands: {error}")
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP as an exception, so that ``finally`` blocks remove temporaries before the process ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the cleanup short
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


class ListingOut:
    """``sys.stdout`` whose reader may leave (``mgf generate ... | head -n 1``) without stopping the command.

    Commands print what they wrote or what they found; once the reader has gone, the rest goes to
    /dev/null and the work goes on, so the exit code still says whether every output was written.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())  # what is buffered, and all later, is dropped

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"mgf: warning: {printable(str(message))}\n"


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _main(argv)
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        return _main(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


NEGATIVE_RANGE = re.compile(r"-\d+:\S*")  # also malformed ones, so that they meet their own error


def _join_negative_ranges(argv: list[str]) -> list[str]:
    """``--transpose -3:3`` as ``--transpose=-3:3``: argparse reads a value that starts with '-' as an
    option unless it looks like a negative number, and a LOW:HIGH range does not."""
    joined: list[str] = []
    for arg in argv:
        if joined and NEGATIVE_RANGE.fullmatch(arg) and joined[-1].startswith("--") and "=" not in joined[-1] \
                and joined[-1] != "--":
            joined[-1] += "=" + arg
        else:
            joined.append(arg)
    return joined


def _main(argv: list[str] | None) -> int:
    warnings.formatwarning = _one_line_warning
    # what a contract-2 plugin must change is for its user to see too, not only under pytest (Python hides
    # DeprecationWarnings outside __main__)
    warnings.simplefilter("default", ContractWarning)
    stdout = sys.stdout
    sys.stdout = ListingOut(stdout)
    try:
        return _run(_join_negative_ranges(sys.argv[1:] if argv is None else argv))
    finally:
        sys.stdout.flush()  # here, where a reader that left is not an error
        sys.stdout = stdout


def _run(argv: list[str]) -> int:
    debug = os.environ.get("MGF_DEBUG") == "1" or "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 2
        with guard(args._origin, "command"):
            return args.run(args) or 0
    except MgfError as error:
        if debug:
            traceback.print_exc()
        print(f"mgf: error: {printable(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("mgf: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        print("mgf: terminated", file=sys.stderr)
        return 128 + stop.signum
    except Exception as error:  # a bug in mgf itself: still one line, with the way to see more
        if debug:
            traceback.print_exc()
        print(f"mgf: internal error: {type(error).__name__}: {printable(str(error))} (MGF_DEBUG=1 shows the traceback; "
              "please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
