"""``mgf``: generate music, list plugins; plugins add subcommands through ``register_commands``.

Every :class:`mgf.MgfError` becomes one line on stderr and a non-zero exit (2 for usage errors,
as argparse does, 1 otherwise); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import mgf
from mgf import MgfError, UsageError, registry
from mgf.bundle import read_metadata


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
    cli = Commands(subparsers)
    _add_generate(cli)
    _add_plugins(cli)
    registry.pm.hook.register_commands(cli=cli)
    return parser


def _sampler_options() -> dict[str, mgf.Option]:
    """Every option any installed sampler declares, by name (first declaration wins the help text)."""
    options: dict[str, mgf.Option] = {}
    for entry in registry.registry("samplers").values():
        for option in entry.cls.options:
            options.setdefault(option.name, option)
    return options


def _add_generate(cli: Commands) -> None:
    p = cli.command("generate", "Generate music with a model bundle and a sampler.")
    p.add_argument("--repr", help="representation (default: the bundle's)")
    p.add_argument("--model", default="native", help="model backend (default: native)")
    p.add_argument("--bundle", help="model bundle (.safetensors; default: the representation's default model)")
    p.add_argument("--sampler", default="temperature", help="sampler (default: temperature)")
    group = p.add_argument_group("sampler options (each applies to the samplers that declare it; see `mgf plugins`)")
    for option in _sampler_options().values():
        group.add_argument(f"--{option.name.replace('_', '-')}", dest=f"opt_{option.name}", type=option.type,
                           default=None, help=f"{option.help} (default: {option.default})")
    p.add_argument("--steps", type=int, default=256, help="tokens to generate (default: 256)")
    p.add_argument("--primer", help="primer: text in the representation's notation, or a file to read")
    p.add_argument("--num-outputs", type=int, default=1, help="pieces to generate, as one batch (default: 1)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible output")
    p.add_argument("--threads", type=int, help="cores per step for the native backend (default: MGF_NUM_THREADS or 1)")
    p.add_argument("-o", "--output", help="output file; its suffix picks the format (default: generated.<suffix>)")
    p.set_defaults(run=_generate)


def _generate(args) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.num_outputs < 1:
        raise UsageError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    path = _bundle_path(args)
    options = {"threads": args.threads} if args.threads is not None and args.model == "native" else {}
    if args.threads is not None and args.model != "native":
        raise UsageError("--threads applies to the native backend only")
    model = mgf.load_model(path, backend=args.model, **options)
    representation = model.representation
    primer = None
    if args.primer is not None:
        primer = representation.read(args.primer) if os.path.isfile(args.primer) else representation.parse_primer(args.primer)
    sampler_options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    pieces = mgf.generate(model, args.steps, sampler=args.sampler, primer=primer, seed=args.seed,
                          num_outputs=args.num_outputs, **sampler_options)
    output = args.output or f"generated{representation.suffix}"
    for path_i, tokens in zip(_output_paths(output, len(pieces)), pieces):
        representation.write(tokens, path_i)
        print(path_i)
    return 0


def _bundle_path(args) -> str:
    if args.bundle is None:
        if args.repr is None:
            raise UsageError("give --repr (to use its default model) or --bundle")
        cls = registry.get("representations", args.repr)
        if not cls.default_bundle or not os.path.isfile(cls.default_bundle):
            raise UsageError(f"representation {args.repr!r} ships no default model; give --bundle")
        return cls.default_bundle
    spec = read_metadata(args.bundle)["representation"]
    if args.repr is not None and args.repr != spec["name"]:
        raise UsageError(f"--repr {args.repr} disagrees with the bundle, which was trained for {spec['name']!r}")
    return args.bundle


def _output_paths(output: str, count: int) -> list[str]:
    if count == 1:
        return [output]
    stem, suffix = os.path.splitext(output)
    return [f"{stem}-{i + 1}{suffix}" for i in range(count)]


def _add_plugins(cli: Commands) -> None:
    p = cli.command("plugins", "List representations, model backends and samplers, with where they come from.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_plugins)


def plugin_listing() -> dict[str, list[dict]]:
    """What ``mgf plugins --json`` prints."""
    listing: dict[str, list[dict]] = {}
    for kind in ("representations", "models", "samplers"):
        rows = []
        for name, entry in sorted(registry.registry(kind).items()):
            row = {"name": name, "plugin": entry.plugin, "distribution": entry.distribution, "version": entry.version}
            if kind == "samplers":
                row["options"] = [
                    {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help} for o in entry.cls.options
                ]
            rows.append(row)
        listing[kind] = rows
    return listing


def _plugins(args) -> int:
    listing = plugin_listing()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    titles = {"representations": "Representations", "models": "Model backends", "samplers": "Samplers"}
    for kind, rows in listing.items():
        print(f"{titles[kind]}:")
        for row in rows:
            print(f"  {row['name']:<14} {row['distribution']} {row['version']}".rstrip())
            for o in row.get("options", []):
                print(f"      --{o['name'].replace('_', '-'):<20} {o['type']}, default {o['default']}: {o['help']}")
    return 0


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
