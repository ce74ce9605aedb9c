"""``mgf eval``: measure pieces (MusPy-style metrics), optionally next to a reference corpus."""

import json

import numpy as np

from mgf import InputError, get_representation, hookimpl, read_notes
from mgf.training.sources import load
from mgf.music import metrics


def _row(label, values):
    return [label] + [f"{values[name]:.3f}" if isinstance(values[name], float) else str(values[name]) for name in metrics.METRICS]


def _eval(args):
    representation = get_representation(args.repr)
    results = {path: metrics.measure(read_notes(args.repr, path)) for path in args.files}
    if args.reference:
        loaded = load(representation, args.reference, progress=None if not args.quiet else False)
        pieces = [representation.to_notes(s) for s in loaded.sequences]
        pieces = [p for p in pieces if p]
        if not pieces:
            raise InputError(f"{args.reference}: no piece could be measured")
        measured = [metrics.measure(p) for p in pieces]
        results[f"reference: {args.reference} (mean of {len(pieces)})"] = {
            name: float(np.mean([m[name] for m in measured])) for name in metrics.METRICS}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    header = ["piece"] + list(metrics.METRICS)
    rows = [_row(label, values) for label, values in results.items()]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))))


@hookimpl
def register_commands(cli):
    p = cli.command("eval", "Measure pieces: pitch range and classes, entropy, scale consistency, density, polyphony, ...")
    p.add_argument("files", nargs="+", help="music files (MIDI, MusicXML, ...) or corpus: references")
    p.add_argument("--repr", default="midi", help="representation that reads them (default: midi)")
    p.add_argument("--reference", help="data source to compare with (corpus:bach, a folder, a glob)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_eval)
