"""``mgf card``: what a bundle is, how it was trained, and how close what it writes is to its corpus."""

import json

from mgf import UsageError, get_representation, hookimpl
from mgf.contract import bundle
from mgf.training import card


def _card(args):
    if (args.bundle is None) == (args.repr is None):
        raise UsageError("give a bundle or --repr NAME (its shipped model), not both")
    path = args.bundle or get_representation(args.repr).default_bundle
    meta = bundle.read_metadata(path)
    if args.json:
        print(json.dumps(meta["training"], indent=2))
        return
    print(f"{path}: {meta['representation']['name']} model, {_network(meta['arch'])}")
    defaults = meta["defaults"]
    print(f"sampling defaults (mgf generate without --no-defaults): {_flags(defaults) or 'none'}")
    for sampler, own in defaults.get("samplers", {}).items():
        constraints = "" if "constraints" not in own or own["constraints"] else "no constraints "
        print(f"  with --sampler {sampler}: {constraints}{_flags(own)}".rstrip())
    print(card.describe_precision(meta["precision"]))
    if meta["infill"] is not None:
        print(card.describe_infill(meta["infill"]))
    if meta["controls"] is not None:
        print("\n".join(card.describe_controls(meta["controls"], meta["training"])))
    if meta["representation"]["config"].get("dynamics", "none") != "none":
        print(f"dynamics when writing: {meta['representation']['config']['dynamics']} (added by mgf, not learned; "
              "mgf generate --dynamics none writes the model's own velocities)")
    print(card.describe(meta["training"]))


def _network(arch) -> str:
    """The architecture in a line: cell, layers and widths, vocabulary."""
    shape = arch.transformer
    if shape is not None:
        output = "tied to the embedding" if shape.tied else "its own"
        return (f"TRANSFORMER of {len(arch.hidden)} block(s) of {arch.embedding_dim}, {shape.heads} heads, MLP {shape.mlp}, "
                f"context {shape.context}, {shape.positions} positions, {shape.activation}, output {output}, "
                f"{arch.vocab_size} tokens")
    embedding = f", embedding {arch.embedding_dim}" if arch.embedding_dim else ""
    return (f"{len(arch.hidden)} {arch.cell.upper()} layer(s) of {'/'.join(map(str, arch.hidden))}{embedding}, "
            f"{arch.vocab_size} tokens")


def _flags(defaults) -> str:
    """Sampler, constraints and options as the command-line flags that would give them."""
    return " ".join(([f"--sampler {defaults['sampler']}"] if "sampler" in defaults else [])
                    + [f"--constrain {name}" for name in defaults.get("constraints", [])]
                    + [f"--{k.replace('_', '-')} {v}" for k, v in defaults.get("options", {}).items()])


@hookimpl
def register_commands(cli):
    p = cli.command("card", "Show a model's card: its training data and command, cross-entropy against baselines, "
                            "and what it writes against held-out music of its corpus.")
    p.add_argument("bundle", nargs="?", help="model bundle (.safetensors)")
    p.add_argument("--repr", help="the shipped model of this representation instead")
    p.add_argument("--json", action="store_true", help="print the training metadata, card included, as JSON")
    p.set_defaults(run=_card)
