"""``mgf encode`` / ``mgf decode`` / ``mgf dataset``: look at what a representation makes of music."""

import json
import os
import re

import numpy as np

from mgf import InputError, UsageError, check_output, get_representation, hookimpl, plugin_class, printable
from mgf.contract import bundle
from mgf.training.build import build
from mgf.training.cache import cache_root
from mgf.training.progress import LINE_SECONDS

from mgf.plugins.commands.data_options import add_parallel_options, add_repr_options, check_workers, parse_config, workers


def _representation(args):
    """``--repr`` with ``--config``, or a bundle's representation (its config, ``--config`` on top, and its tensors).

    Without ``--bundle``, a representation whose default model holds learned tensors (audio's
    codebook) comes from that model, as in ``mgf generate``: without them it cannot encode or decode.
    """
    config = parse_config(args.config)
    path = args.bundle
    if path is None:
        if args.repr is None:
            raise UsageError("give --repr or --bundle")
        default = plugin_class("representations", args.repr).default_bundle
        if not default or not os.path.isfile(default) or not bundle.read_repr_tensors(default):
            return get_representation(args.repr, **config)
        path = default
    spec = bundle.read_metadata(path)["representation"]
    if args.repr is not None and args.repr != spec["name"]:
        raise UsageError(f"--repr {args.repr} disagrees with the bundle, which was trained for {spec['name']!r}")
    get_representation(spec["name"], **config)  # --config alone is checked first: its errors are the user's
    representation = get_representation(spec["name"], **{**spec["config"], **config})
    representation.load_tensors(bundle.read_repr_tensors(path))
    return representation


def _encode(args):
    representation = _representation(args)
    for name, tokens in representation.read_pieces(args.file):
        if args.names:
            print(f"# {name}")
        print(" ".join(str(int(t)) for t in tokens))


def _decode(args):
    representation = _representation(args)
    text = args.tokens
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    tokens = _token_ids(text, representation.vocab_size)
    output = args.output or f"decoded{representation.suffix}"
    check_output(output)  # before writing, which can take a while (audio's Griffin-Lim)
    representation.write(tokens, output)
    print(output)


def _token_ids(text, vocab_size):
    """int32 ids of ``text`` (ASCII integers separated by spaces or commas), each checked against the vocabulary."""
    ids = []
    for part in text.replace(",", " ").split():
        if not re.fullmatch(r"-?[0-9]+", part):
            raise InputError(f"decode: {part[:30]!r} is not a token id (ids are integers separated by spaces)")
        value = int(part) if len(part) <= 30 else None  # a longer id is out of range: not worth converting
        if value is None or not 0 <= value < vocab_size:
            shown = part if value is not None else part[:30] + "..."
            raise InputError(f"token id {shown} is outside the vocabulary [0, {vocab_size})")
        ids.append(value)
    if not ids:
        raise InputError("no tokens to decode")
    return np.array(ids, dtype=np.int32)


def _dataset(args):
    representation = _representation(args)
    check_workers(args)
    if args.output is None and args.no_cache:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:  # encoded, summarised, not kept
            return _summarise(args, representation, os.path.join(scratch, "dataset"))
    return _summarise(args, representation, args.output)


def _summarise(args, representation, directory):
    built = build(representation, args.source, directory, workers=workers(args), scheduler=args.scheduler,
                       cache=not args.no_cache, progress=False if args.quiet else None,
                       every=None if args.quiet else LINE_SECONDS, validation=args.val_split)
    manifest, skipped = built.manifest, built.skipped()
    pieces, tokens = manifest["pieces"], manifest["tokens"]
    summary = {
        "source": args.source,
        "representation": {"name": representation.name, "config": representation.config()},
        "pieces": pieces,
        "tokens": tokens,
        "mean_length": tokens / pieces if pieces else 0.0,
        "from_cache": manifest["files"]["from_cache"],
        "skipped": [{"file": path, "reason": _reason(path, reason)} for path, reason in skipped],
        "split": manifest["split"],
        "dataset": args.output or (None if args.no_cache else built.directory),
        "cache": None if args.no_cache else cache_root(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{pieces} pieces, {tokens} tokens (mean {summary['mean_length']:.0f}) "
              f"from {args.source}; {summary['from_cache']} files from the cache")
        if summary["dataset"]:
            print(f"dataset: {summary['dataset']}")
        if skipped:
            print(f"skipped {len(skipped)} file(s):")
            for path, reason in skipped:
                print(printable(f"  {path}: {_reason(path, reason)}"))  # quotes what the file holds
    if not pieces:
        raise InputError(f"{args.source}: no piece could be read")


def _reason(path, reason):
    """Why ``path`` was skipped, without the path that representations put first in their messages."""
    return reason.removeprefix(f"{path}: ")


@hookimpl
def register_commands(cli):
    p = cli.command("encode", "Print the tokens of a music file (one line per piece).")
    p.add_argument("file", help="music file or corpus: reference, e.g. corpus:bach/bwv66.6")
    add_repr_options(p)
    p.add_argument("--names", action="store_true", help="print each piece's name before its tokens")
    p.set_defaults(run=_encode)

    p = cli.command("decode", "Write token ids as a music file.")
    p.add_argument("tokens", help="token ids separated by spaces, or a file holding them")
    add_repr_options(p)
    p.add_argument("-o", "--output", help="output file; its suffix picks the format")
    p.set_defaults(run=_decode)

    p = cli.command("dataset", "Encode training data (corpus: reference, folder, glob) into a dataset directory "
                    "(the cache's, or -o) and summarise it.")
    p.add_argument("source", help="corpus:bach, corpus:essenFolksong, a folder of files, or a glob")
    add_repr_options(p)
    add_parallel_options(p)
    p.add_argument("-o", "--output", help="write the dataset directory here (a new directory) for `mgf train --data`")
    p.add_argument("--val-split", type=float, default=0.1, help="validation fraction the summary counts (default: 0.1)")
    p.add_argument("--no-cache", action="store_true", help="re-encode every file and write no cache")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.set_defaults(run=_dataset)
