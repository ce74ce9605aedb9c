"""Command-line options shared by the commands that sample a model (``mgf generate``, ``mgf infill``): which bundle,
the sampler, constraints, processors and every plugin option, checked into one plan.

A helper module of those plugins, not a plugin: nothing here is registered.
"""

import argparse
import os
import warnings

import mgf
from mgf import PluginWarning, UsageError, installed, plugin_class
from mgf.generation.plan import Plan, plan

OPTION_KINDS = ("samplers", "constraints", "models")

#: the processors' flags (mgf.processors), each with its metavar and help
PROCESSOR_FLAGS = {
    "temperature": ("T", "divide the logits by T (below 1: more conservative); replaces the bundle's temperature"),
    "top_k": ("K", "keep the K most likely tokens (0: all); replaces the bundle's top-k"),
    "top_p": ("P", "keep the most likely tokens whose probability sums to P (nucleus); replaces the bundle's top-p"),
    "min_p": ("P", "keep the tokens at least P times as likely as the most likely one (min-p sampling)"),
    "repetition_penalty": ("R", "push down every token the piece already holds, primer included (CTRL's rule: R > 1 "
                                "divides a positive logit by R, multiplies a negative one)"),
}


def declared_options() -> dict[str, list[tuple[str, mgf.Option]]]:
    """Every option a sampler, constraint or backend declares: ``{name: [(owner, Option), ...]}``."""
    found: dict[str, list[tuple[str, mgf.Option]]] = {}
    for kind in OPTION_KINDS:
        for name, entry in installed(kind).items():
            for option in entry.cls.options:
                found.setdefault(option.name, []).append((f"{kind[:-1]} {name}", option))
    return found


def add_model_options(p) -> None:
    """``--repr``, ``--model`` and ``--bundle``: the model a command samples."""
    p.add_argument("--repr", help="representation (default: the bundle's)")
    p.add_argument("--model", default="native", help="model backend (default: native)")
    p.add_argument("--bundle", help="model bundle (.safetensors; default: the representation's default model)")


def add_sampling_options(p, command: str) -> None:
    """``--sampler``, ``--constrain``, ``--no-defaults``, the processors' flags and every plugin's options."""
    p.add_argument("--sampler", help="sampler (default: the bundle's, see `mgf card`, else temperature)")
    p.add_argument("--constrain", action="append", metavar="NAME",
                   help="apply a constraint at every step (repeatable, in order, after the bundle's default ones; "
                        "see `mgf plugins` and `mgf card`)")
    p.add_argument("--no-defaults", action="store_true",
                   help="ignore the bundle's sampling defaults: temperature 1, no constraints, plugin defaults")
    shaping = p.add_argument_group("processors (after the constraints, under every sampler, beam included, in the order "
                                   "given here: --min-p 0.1 --temperature 2 is not --temperature 2 --min-p 0.1)")
    for kind, (metavar, text) in PROCESSOR_FLAGS.items():
        shaping.add_argument("--" + kind.replace("_", "-"), dest="processors", action=_InOrder, const=kind, default=[],
                             metavar=metavar, help=text)
    group = p.add_argument_group("plugin options (each goes to the chosen sampler, constraints and backend that "
                                 "declare it; see `mgf plugins`)")
    for name, owners in sorted(declared_options().items()):
        if name in PROCESSOR_FLAGS:  # the processor's flag: a sampler's option of that name is given from Python
            continue
        first = owners[0][1]
        who = ", ".join(owner for owner, _ in owners)
        types = sorted({option.type.__name__ for _, option in owners})
        also = " (and a conditioned model's key control)" if name == "key" else ""
        try:
            group.add_argument(first.flag, dest=f"opt_{name}", default=None, metavar="/".join(types).upper(),
                               help=f"{first.help} [{who}]{also}")
        except argparse.ArgumentError:
            warnings.warn(f"option {name!r} of {who} clashes with a flag of `mgf {command}`; it can be given from "
                          "Python only", PluginWarning, stacklevel=1)
    add_control_options(p)


def add_control_options(p) -> None:
    """``--chords``, ``--density``, ``--polyphony`` and ``--control NAME=VALUE``: what steers a conditioned model."""
    group = p.add_argument_group("controls (a model trained with `mgf train --controls`; `mgf card` lists its controls "
                                 "and their values; --key too)")
    taken = declared_options()  # a plugin's option of the same name (mgf-chord-tones' chords): that flag serves both
    for flag, metavar, text in (
            ("chords", "PROGRESSION", "one chord per bar, repeating: \"Am F C G\" (major and minor triads; N: no chord)"),
            ("density", "N", "notes that start in each bar (or several values, one per bar)"),
            ("polyphony", "N", "notes sounding at once, bar average (polyphonic models)")):
        if flag not in taken:
            group.add_argument(f"--{flag}", dest=f"control_{flag}", metavar=metavar, help=text)
    group.add_argument("--control", action="append", default=[], metavar="NAME=VALUE",
                       help="any installed control, a third party's too (repeatable)")


def typed_controls(args) -> dict:
    """The controls typed on the command line, by name."""
    found = {name: getattr(args, f"control_{flag}", None) for name, flag in (("chord", "chords"), ("density", "density"),
                                                                           ("polyphony", "polyphony"))}
    found = {name: value for name, value in found.items() if value is not None}
    for text in args.control:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--control takes NAME=VALUE (e.g. register=high), got {text[:40]!r}")
        if name.strip() in found:
            raise UsageError(f"control {name.strip()!r} is given twice")
        found[name.strip()] = value.strip()
    return found


class _InOrder(argparse.Action):
    """Appends ``(kind, text, flag)`` to one list, so that the order on the command line is the order applied."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), (self.const, values, option_string)])


def processors(typed: list) -> list:
    """The processors typed on the command line, in order; a bad value is one line naming the flag."""
    found = []
    for kind, text, flag in typed:
        integer = kind == "top_k"
        try:
            value = int(text, 10) if integer else float(text)
        except ValueError:
            raise UsageError(f"{flag} must be {'an integer' if integer else 'a number'}, got {text!r:.40}") from None
        try:
            found.append(mgf.processors.KINDS[kind](value))
        except UsageError as error:
            raise UsageError(f"{flag} {text}: {error}") from None
    return found


def backend_options(args, backend) -> dict:
    """The plugin options typed on the command line that the model backend declares."""
    return {k: v for k, v in typed_options(args).items() if k in {o.name for o in backend.options}}


def typed_options(args) -> dict:
    """Every plugin option typed on the command line, by name."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}


def sampling_plan(args, backend, defaults: dict, steps: int | None, num_outputs: int | None,
                  representation=None) -> Plan:
    """The checked plan of the sampling options typed (messages name them as flags), over the bundle's ``defaults``;
    the controls typed need the model's ``representation``."""
    return plan(defaults, steps, sampler=args.sampler, constraints=args.constrain, options=typed_options(args),
                processors=processors(args.processors), seed=args.seed, num_outputs=num_outputs, typed=True,
                others={f"model backend {args.model!r}": backend.options}, controls=typed_controls(args),
                representation=representation)


def check_repr(args, trained: str) -> None:
    """``--repr``, if given, must name the representation the bundle was trained for."""
    if args.repr is not None and args.repr != trained:
        raise UsageError(f"--repr {args.repr} disagrees with the bundle, which was trained for {trained!r}")


def bundle_path(args) -> str:
    """``--bundle``, else the default model of ``--repr``."""
    if args.bundle is not None:
        return args.bundle
    if args.repr is None:
        raise UsageError("give --repr (to use its default model) or --bundle")
    cls = plugin_class("representations", args.repr)
    if not cls.default_bundle or not os.path.isfile(cls.default_bundle):
        raise UsageError(f"representation {args.repr!r} ships no default model; give --bundle")
    return cls.default_bundle


def output_paths(output: str, count: int) -> list[str]:
    """``output`` for one piece; ``stem-1.suffix``, ``stem-2.suffix``, ... for several."""
    if count == 1:
        return [output]
    stem, suffix = os.path.splitext(output)
    return [f"{stem}-{i + 1}{suffix}" for i in range(count)]


def as_read(representation):
    """``representation`` writing notes back as it read them: its ``dynamics`` (midi's accents) none, where it has any."""
    return with_dynamics(representation, "none") if "dynamics" in representation.config() else representation


def with_dynamics(representation, style: str):
    """``representation`` rebuilt with its ``dynamics`` config set to ``style`` (midi's: plugins/representations/midi_dynamics.py),
    an infilling model's ids kept."""
    conditioned = representation if isinstance(representation, mgf.Conditioned) else None
    framed = conditioned.base if conditioned is not None else representation
    base = framed.base if isinstance(framed, mgf.Infilling) else framed
    if "dynamics" not in {option.name for option in type(base).options}:
        raise UsageError(f"--dynamics: the {base.name} representation writes no dynamics (midi does)")
    shaped = mgf.get_representation(base.name, **{**base.config(), "dynamics": style})
    shaped.load_tensors(base.tensors())
    shaped = mgf.Infilling(shaped) if base is not framed else shaped
    if conditioned is None:
        return shaped
    return mgf.Conditioned(shaped, [(family.control, family.values) for family in conditioned.families])
