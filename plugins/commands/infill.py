"""``mgf infill``: refill bars (or seconds) of a piece with a model trained to infill, the rest of it as it was."""

import os
import re

import mgf
from mgf import UsageError, atomic_path, check_limit, check_output, hookimpl, plugin_class
from mgf.contract import bundle
from mgf.generation.api import representation_of
from mgf.generation.plan import infill_tokens
from mgf.plugins.commands.sampling_options import (add_model_options, add_sampling_options, as_read, backend_options,
                                                   bundle_path, check_repr, output_paths, sampling_plan)


@hookimpl
def register_commands(cli):
    p = cli.command("infill", "Refill bars of a piece with a model trained to infill (mgf train --infill).")
    p.add_argument("piece", help="the piece: a file the bundle's representation reads")
    gap = p.add_mutually_exclusive_group(required=True)
    gap.add_argument("--bars", metavar="A-B", help="bars A to B, counted from 1, both included (9-12; 9 for one bar)")
    gap.add_argument("--seconds", metavar="A-B", help="from A up to B seconds (where the representation has no bars, or "
                                                      "by choice)")
    add_model_options(p)
    p.add_argument("--num-outputs", type=int, default=1, help="takes, generated as one batch (default: 1)")
    p.add_argument("--max-tokens", type=int, help="tokens a middle may take before the run fails (default: from the "
                                                  "piece's tokens per step)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible output")
    p.add_argument("-o", "--output", help="output file (several takes: OUT-1, OUT-2, ...; default: the piece's name "
                                          "with -infilled)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    add_sampling_options(p, "infill")
    p.set_defaults(run=_infill)


def _infill(args) -> int:
    gap = _span(args.bars, "--bars", int) if args.bars is not None else None
    span = _span(args.seconds, "--seconds", float) if args.seconds is not None else None
    if args.num_outputs < 1:
        raise UsageError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    check_limit("num_outputs", args.num_outputs)
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    backend = plugin_class("models", args.model)
    path = bundle_path(args)
    loaded = bundle.read(path) if backend.reads_bundles else None
    if loaded is not None:
        check_repr(args, loaded.representation["name"])
    settings = sampling_plan(args, backend, {} if loaded is None or args.no_defaults else loaded.defaults, None,
                             args.num_outputs if args.num_outputs > 1 else None,
                             None if loaded is None else representation_of(path, loaded))
    model = mgf.load_model(path if loaded is None else loaded, backend=args.model, **backend_options(args, backend))
    if loaded is None:
        check_repr(args, model.representation.name)  # a file format of the backend's own: only its model knows
    infill_tokens(model.representation)  # a model that cannot infill says so before the piece is read
    stem, suffix = os.path.splitext(os.path.basename(args.piece))
    suffix = suffix if os.path.isfile(args.piece) else model.representation.suffix  # a file: written back as it came
    paths = output_paths(args.output or f"{stem}-infilled{suffix}", args.num_outputs)
    for target in paths:
        check_output(target)
    model.representation = as_read(model.representation)  # what is written is what was read: no accents added twice
    piece = model.representation.read(args.piece)
    pieces = mgf.infill_piece(model, piece, bars=gap, seconds=span, plan=settings, max_tokens=args.max_tokens,
                              progress=False if args.quiet else None)
    for target, tokens in zip(paths, pieces if isinstance(pieces, list) else [pieces]):
        with atomic_path(target) as tmp:
            model.representation.write(tokens, tmp)
        print(target)
    return 0


def _span(text: str, flag: str, kind: type) -> tuple:
    """``A-B`` (or ``A``, bars only) as two numbers of ``kind``; a one-line ``UsageError`` otherwise."""
    number = r"\d+" if kind is int else r"\d+(?:\.\d*)?|\.\d+"
    found = re.fullmatch(rf"\s*({number})\s*(?:-\s*({number})\s*)?", text)
    if found is None or (found.group(2) is None and kind is not int):
        raise UsageError(f"{flag} takes A-B ({'9-12' if kind is int else '4.5-9'}), got {text[:40]!r}")
    first = kind(found.group(1))
    last = kind(found.group(2)) if found.group(2) is not None else first
    if kind is int and first < 1:
        raise UsageError(f"{flag}: bars are counted from 1, got {text[:40]!r}")
    if last < first or (kind is float and last == first):
        raise UsageError(f"{flag} {text[:40]}: the range runs backwards or is empty; give A-B with A before B")
    return first, last
