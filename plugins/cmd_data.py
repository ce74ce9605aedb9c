"""``mgf encode`` / ``mgf decode`` / ``mgf dataset``: look at what a representation makes of music."""

import json
import os

import numpy as np

from mgf import InputError, data, get_representation, hookimpl


def _config(pairs):
    """``["key=value", ...]`` -> dict; values are JSON where they parse (numbers, booleans), else strings."""
    config = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--config takes KEY=VALUE, got {pair!r}")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def _representation(args):
    return get_representation(args.repr, **_config(args.config))


def _add_repr_options(parser):
    parser.add_argument("--repr", required=True, help="representation")
    parser.add_argument("--config", action="append", metavar="KEY=VALUE", help="representation config (repeatable)")


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
    try:
        tokens = np.array([int(part) for part in text.replace(",", " ").split()], dtype=np.int64)
    except ValueError:
        raise InputError("decode takes token ids separated by spaces (or a file of them)") from None
    if tokens.size == 0:
        raise InputError("no tokens to decode")
    bad = tokens[(tokens < 0) | (tokens >= representation.vocab_size)]
    if bad.size:
        raise InputError(f"token id {bad[0]} is outside [0, {representation.vocab_size})")
    output = args.output or f"decoded{representation.suffix}"
    representation.write(tokens.astype(np.int32), output)
    print(output)


def _dataset(args):
    representation = _representation(args)
    loaded = data.load(representation, args.source, cache=not args.no_cache, progress=False if args.quiet else None)
    lengths = [len(s) for s in loaded.sequences]
    summary = {
        "source": args.source,
        "representation": {"name": representation.name, "config": representation.config()},
        "pieces": len(lengths),
        "tokens": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)) if lengths else 0.0,
        "from_cache": loaded.cached,
        "skipped": [{"file": path, "reason": reason} for path, reason in loaded.skipped],
        "cache": None if args.no_cache else data.cache_root(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['pieces']} pieces, {summary['tokens']} tokens (mean {summary['mean_length']:.0f}) "
              f"from {args.source}; {loaded.cached} files from the cache")
        if loaded.skipped:
            print(f"skipped {len(loaded.skipped)} file(s):")
            for path, reason in loaded.skipped:
                print(f"  {path}: {reason}")
    if not loaded.sequences:
        raise InputError(f"{args.source}: no piece could be read")


@hookimpl
def register_commands(cli):
    p = cli.command("encode", "Print the tokens of a music file (one line per piece).")
    p.add_argument("file", help="music file or corpus: reference, e.g. corpus:bach/bwv66.6")
    _add_repr_options(p)
    p.add_argument("--names", action="store_true", help="print each piece's name before its tokens")
    p.set_defaults(run=_encode)

    p = cli.command("decode", "Write token ids as a music file.")
    p.add_argument("tokens", help="token ids separated by spaces, or a file holding them")
    _add_repr_options(p)
    p.add_argument("-o", "--output", help="output file; its suffix picks the format")
    p.set_defaults(run=_decode)

    p = cli.command("dataset", "Encode training data (corpus: reference, folder, glob) into the cache and summarise it.")
    p.add_argument("source", help="corpus:bach, corpus:essenFolksong, a folder of files, or a glob")
    _add_repr_options(p)
    p.add_argument("--no-cache", action="store_true", help="re-encode every file and write no cache")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.set_defaults(run=_dataset)
