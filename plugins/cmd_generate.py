"""``mgf generate``: load a bundle, sample, write the pieces with the bundle's representation."""

import argparse
import os
import warnings

import numpy as np

import mgf
from mgf import UsageError, check_output, hookimpl, registry
from mgf.api import check_limit
from mgf.options import resolve, split


OPTION_KINDS = ("samplers", "constraints", "models")


def declared_options() -> dict[str, list[tuple[str, mgf.Option]]]:
    """Every option a sampler, constraint or backend declares: ``{name: [(owner, Option), ...]}``."""
    found: dict[str, list[tuple[str, mgf.Option]]] = {}
    for kind in OPTION_KINDS:
        for name, entry in registry.registry(kind).items():
            for option in entry.cls.options:
                found.setdefault(option.name, []).append((f"{kind[:-1]} {name}", option))
    return found


@hookimpl
def register_commands(cli):
    p = cli.command("generate", "Generate music with a model bundle and a sampler.")
    p.add_argument("--repr", help="representation (default: the bundle's)")
    p.add_argument("--model", default="native", help="model backend (default: native)")
    p.add_argument("--bundle", help="model bundle (.safetensors; default: the representation's default model)")
    p.add_argument("--sampler", default="temperature", help="sampler (default: temperature)")
    p.add_argument("--constrain", action="append", default=[], metavar="NAME",
                   help="apply a constraint at every step (repeatable, in order; see `mgf plugins`)")
    p.add_argument("--steps", type=int, default=256, help="tokens to generate (default: 256)")
    p.add_argument("--primer", help="primer: text in the representation's notation, or a file to read")
    p.add_argument("--num-outputs", type=int, default=1, help="pieces to generate, as one batch (default: 1)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible output")
    p.add_argument("-o", "--output", help="output file; its suffix picks the format (default: generated.<suffix>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("--render", action="store_true", help="also write each piece as a WAV file beside it")
    p.add_argument("--plot", action="store_true", help="also draw each piece's piano roll as a PNG beside it")
    group = p.add_argument_group("plugin options (each goes to the chosen sampler, constraints and backend that "
                                 "declare it; see `mgf plugins`)")
    for name, owners in sorted(declared_options().items()):
        first = owners[0][1]
        who = ", ".join(owner for owner, _ in owners)
        types = sorted({option.type.__name__ for _, option in owners})
        try:
            group.add_argument(first.flag, dest=f"opt_{name}", default=None, metavar="/".join(types).upper(),
                               help=f"{first.help} [{who}]")
        except argparse.ArgumentError:
            warnings.warn(f"option {name!r} of {who} clashes with a flag of `mgf generate`; it can be given from "
                          "Python only", registry.PluginWarning, stacklevel=1)
    p.set_defaults(run=_generate)


#: outputs generated as one batch; more are generated batch after batch and written as they come
BATCH = 64


def _generate(args) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.num_outputs < 1:
        raise UsageError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    check_limit("steps", args.steps)
    check_limit("outputs", args.num_outputs)
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    backend = registry.entry("models", args.model)
    owners = {f"model backend {args.model!r}": backend.cls.options,
              f"sampler {args.sampler!r}": registry.entry("samplers", args.sampler).cls.options}
    owners.update({f"constraint {name!r}": registry.entry("constraints", name).cls.options for name in args.constrain})
    shares = split(given, owners)
    for label, share in shares.items():  # every value checked before any work
        resolve(owners[label], share, label)
    backend_options = shares.pop(f"model backend {args.model!r}")
    sampler_options = {k: v for share in shares.values() for k, v in share.items()}
    bundle_path = _bundle_path(args)
    if args.output is not None:
        _check_outputs(_output_paths(args.output, args.num_outputs), args)
    model = mgf.load_model(bundle_path, backend=args.model, **backend_options)
    representation = model.representation
    if args.repr is not None and args.repr != representation.name:
        raise UsageError(f"--repr {args.repr} disagrees with the bundle, which was trained for {representation.name!r}")
    paths = _output_paths(args.output or f"generated{representation.suffix}", args.num_outputs)
    if args.output is None:
        _check_outputs(paths, args)
    primer = None
    if args.primer is not None:
        primer = representation.read(args.primer) if os.path.isfile(args.primer) else representation.parse_primer(args.primer)
    for first in range(0, args.num_outputs, BATCH):
        count = min(BATCH, args.num_outputs - first)
        seed = args.seed if args.seed is None or first == 0 else np.random.SeedSequence([args.seed, first // BATCH])
        pieces = mgf.generate(model, args.steps, sampler=args.sampler, primer=primer, seed=seed, num_outputs=count,
                              progress=False if args.quiet else None, constraints=args.constrain, **sampler_options)
        for path, tokens in zip(paths[first:first + count], pieces):
            _write(representation, tokens, path, args)
    return 0


def _check_outputs(paths: list[str], args) -> None:
    """Every file this run would write can be written: checked before any work, so a bad -o costs nothing."""
    for path in paths:
        check_output(path)
        stem = os.path.splitext(path)[0]
        if args.render:
            check_output(stem + ".wav")
        if args.plot:
            check_output(stem + ".png")


def _write(representation, tokens, path, args) -> None:
    """One piece, and its WAV and piano roll if asked; each path printed once written."""
    notes = representation.to_notes(tokens) if args.render or args.plot else None  # fail before writing anything
    representation.write(tokens, path)
    print(path, flush=True)
    if args.render:
        from .cmd_render import render_notes

        wav = os.path.splitext(path)[0] + ".wav"
        render_notes(notes, wav)
        print(wav, flush=True)
    if args.plot:
        from .cmd_plot import plot_notes

        png = os.path.splitext(path)[0] + ".png"
        plot_notes(notes, png, title=os.path.basename(path))
        print(png, flush=True)


def _bundle_path(args) -> str:
    if args.bundle is not None:
        return args.bundle
    if args.repr is None:
        raise UsageError("give --repr (to use its default model) or --bundle")
    cls = registry.get("representations", args.repr)
    if not cls.default_bundle or not os.path.isfile(cls.default_bundle):
        raise UsageError(f"representation {args.repr!r} ships no default model; give --bundle")
    return cls.default_bundle


def _output_paths(output: str, count: int) -> list[str]:
    if count == 1:
        return [output]
    stem, suffix = os.path.splitext(output)
    return [f"{stem}-{i + 1}{suffix}" for i in range(count)]
