"""``mgf generate``: load a bundle, sample, write the pieces with the bundle's representation."""

import os

import mgf
from mgf import UsageError, hookimpl, registry
from mgf.bundle import read_metadata


def _sampler_options() -> dict[str, mgf.Option]:
    """Every option any installed sampler declares, by name (first declaration wins the help text)."""
    options: dict[str, mgf.Option] = {}
    for entry in registry.registry("samplers").values():
        for option in entry.cls.options:
            options.setdefault(option.name, option)
    return options


@hookimpl
def register_commands(cli):
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
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("--render", action="store_true", help="also write each piece as a WAV file beside it")
    p.add_argument("--plot", action="store_true", help="also draw each piece's piano roll as a PNG beside it")
    p.set_defaults(run=_generate)


def _generate(args) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.num_outputs < 1:
        raise UsageError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    path = _bundle_path(args)
    if args.threads is not None and args.model != "native":
        raise UsageError("--threads applies to the native backend only")
    options = {} if args.threads is None else {"threads": args.threads}
    model = mgf.load_model(path, backend=args.model, **options)
    representation = model.representation
    primer = None
    if args.primer is not None:
        primer = representation.read(args.primer) if os.path.isfile(args.primer) else representation.parse_primer(args.primer)
    sampler_options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    pieces = mgf.generate(model, args.steps, sampler=args.sampler, primer=primer, seed=args.seed,
                          num_outputs=args.num_outputs, progress=False if args.quiet else None, **sampler_options)
    output = args.output or f"generated{representation.suffix}"
    notes = [representation.to_notes(tokens) for tokens in pieces] if args.render or args.plot else None  # fail early
    for index, (path_i, tokens) in enumerate(zip(_output_paths(output, len(pieces)), pieces)):
        representation.write(tokens, path_i)
        print(path_i)
        if args.render:
            from .cmd_render import render_notes

            wav = os.path.splitext(path_i)[0] + ".wav"
            render_notes(notes[index], wav)
            print(wav)
        if args.plot:
            from .cmd_plot import plot_notes

            png = os.path.splitext(path_i)[0] + ".png"
            plot_notes(notes[index], png, title=os.path.basename(path_i))
            print(png)
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
