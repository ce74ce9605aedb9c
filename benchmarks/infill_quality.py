"""Does an infilling model use the music after the gap?  (issue 20, "Infilling uses the future")

    python benchmarks/infill_quality.py fills.safetensors                          # bars 5-8 and 5-12 of 16
    python benchmarks/infill_quality.py fills.safetensors --plain plain.safetensors --gaps 5-8 --takes 2 --json

For each held-out piece of the bundle's training data (the validation side of the split ``mgf train`` made, as
benchmarks/model_quality.py finds it), cut to ``--bars`` bars (a bar past the gap at least), and each gap (bars as a
musician counts them; a representation with bars), the cross-entropy (nats per token, native backend, teacher-forced)
of the true middle tokens under these prompts:

- both sides: ``[start, *sequence(ids, before, after)]``, each side cut to the bundle's ``context``, as ``mgf infill``
  asks;
- another piece's after: the same with the music after another held-out piece's gap (a model that reads the future
  does worse);
- no after: the same with nothing after the gap (the left side alone, in the infilling format);
- left only, plain: ``[start, *before]``, the whole left side, scored by the same model and by ``--plain`` (a model of
  the same size trained without ``--infill``).

The issue asks that "both sides" be >= 10% lower than "left only": the ratio column is against the plain prompt of the
same model, or of ``--plain`` when given.  "last bar" is the middle's last bar alone, where the music after the gap
tells most; END (which a plain prompt has no id for) is scored apart, its nats at the gap's true end.  Then
``--takes`` fills per piece are generated (``mgf.infill_piece`` under the bundle's defaults, seeds 0..) and their
seams measured: the pitch interval and onset gap from the last onset before each seam to the first at or after it
(the top note of each), against the true pieces' seams and the corpus's own bar lines (every bar line of the
held-out pieces).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import mgf
from mgf.contract import bundle
from mgf.contract.clock import clock_of
from mgf.contract.controls import interleave
from mgf.contract.infill import gap_bounds, sequence
from mgf.contract.sampler import log_softmax
from mgf.training.shards import Shards, is_dataset
from mgf.training.split import sides
from model_quality import split  # benchmarks/ is sys.path[0] when run as a script


def held_out(model, sources: list[str], validation: float) -> list[np.ndarray]:
    """The held-out pieces of ``sources``: the validation side of ``mgf train``'s split."""
    if not all(is_dataset(source) for source in sources):
        return list(split(model.representation, sources)[1].sequences)
    shards = [(data, i) for data in map(Shards, sources) for i in range(len(data))]
    masks = sides([data.shard(i, tokens=False)[2] for data, i in shards], validation)
    return [piece for (data, i), mask in zip(shards, masks) for piece in data.pieces(i, mask)]


def with_any(representation, tokens, offset: int = 0) -> np.ndarray:
    """``tokens`` with a conditioned model's "any" controls at its bars from step ``offset`` (as ``mgf infill`` reads music
    when no control is asked), else as they are."""
    if not isinstance(representation, mgf.Conditioned):
        return tokens
    anys = np.array([[family.any for family in representation.families]], np.int32)
    clock = representation.clock()
    return interleave(clock, tokens, anys, offset, offset // clock.steps_per_bar)


def framed(ids, start: int, context: int, before, middle, after) -> tuple[np.ndarray, int]:
    """An example as ``mgf infill`` frames it (each side cut to ``context``) and the count of its tokens after the prompt;
    the parts of a conditioned model with their controls (:func:`with_any`)."""
    prompt = sequence(ids, before[-context:], after[:context])
    tokens = np.concatenate([[start], sequence(ids, before[-context:], after[:context], middle)])
    return tokens, len(tokens) - 1 - len(prompt)


def target_nats(model, rows: list[tuple[np.ndarray, int]], batch_size: int = 64) -> list[np.ndarray]:
    """Per row ``(tokens, n)``: the nats of each of the last ``n`` tokens given those before it (teacher-forced)."""
    out: list[np.ndarray] = [np.empty(0)] * len(rows)
    order = sorted(range(len(rows)), key=lambda r: len(rows[r][0]))
    for first in range(0, len(order), batch_size):
        batch = order[first:first + batch_size]
        longest = max(len(rows[r][0]) for r in batch)
        tokens = np.zeros((len(batch), longest), np.int32)
        for k, r in enumerate(batch):
            tokens[k, :len(rows[r][0])] = rows[r][0]
        nats = np.zeros((len(batch), longest - 1))
        state = model.initial_state(len(batch))
        for t in range(longest - 1):
            logits, state = model.step(tokens[:, t].copy(), state)
            nats[:, t] = -log_softmax(logits)[np.arange(len(batch)), tokens[:, t + 1]]
        for k, r in enumerate(batch):
            length, n = len(rows[r][0]), rows[r][1]
            out[r] = nats[k, length - 1 - n:length - 1]
    return out


def seam(clock, notes, step: int) -> tuple[float, float] | None:
    """(|pitch interval|, onset gap in seconds) from the last onset before ``step`` to the first at or after it."""
    t = step * clock.step_seconds - 1e-9
    before = [n for n in notes if n[2] < t]
    after = [n for n in notes if n[2] >= t]
    if not before or not after:
        return None
    last, first = max(n[2] for n in before), min(n[2] for n in after)
    high = max(n[0] for n in before if n[2] == last), max(n[0] for n in after if n[2] == first)
    return abs(high[1] - high[0]), first - last


def figures(pairs: list) -> dict[str, float]:
    """Mean and 90th percentile of |interval|, median onset gap (a long rest is an outlier), over the seams found."""
    found = np.array([p for p in pairs if p is not None], float).reshape(-1, 2)
    if not len(found):
        return {"seams": 0}
    return {"seams": len(found), "interval_mean": float(found[:, 0].mean()),
            "interval_p90": float(np.percentile(found[:, 0], 90)), "onset_gap_median": float(np.median(found[:, 1]))}


def measure(model, plain, pieces: list[np.ndarray], gap: tuple[int, int], bars: int, takes: int) -> dict:
    """The cross-entropy rows and seam figures of one gap over the pieces long enough for it."""
    representation, ids = model.representation, model.representation.infill
    clock = clock_of(representation)
    start, context = representation.start_token, model.infill["context"]
    per_bar = clock.steps_per_bar
    cut = [p[:gap_bounds(clock, p, 0, max(bars, gap[1] + 1) - 1)[1]] for p in pieces]
    cut = [p for p in cut if clock.steps(p)[-1] > gap[1] * per_bar]  # music after the gap
    parts = []
    for piece in cut:
        i, j = gap_bounds(clock, piece, gap[0] - 1, gap[1] - 1)
        parts.append((piece[:i], piece[i:j], piece[j:]))
    if len(parts) < 2:
        return {"pieces": len(parts)}

    base = representation.base.clock() if isinstance(representation, mgf.Conditioned) else clock

    def example(before, middle, after):
        at, end = int(base.steps(before)[-1]), int(base.steps(before)[-1] + base.steps(middle)[-1])
        return framed(ids, start, context, with_any(representation, before), with_any(representation, middle, at),
                      with_any(representation, after, end))

    prompts = {
        "both sides": [example(b, m, a) for b, m, a in parts],
        "another piece's after": [example(b, m, parts[(k + 1) % len(parts)][2]) for k, (b, m, _) in enumerate(parts)],
        "no after": [example(b, m, a[:0]) for b, m, a in parts],
    }
    last = np.concatenate([clock.steps(m)[:-1] >= (gap[1] - gap[0]) * per_bar for _, m, _ in parts])  # its last bar
    rows: dict[str, dict] = {}
    for name, framed_rows in prompts.items():
        nats = np.concatenate(target_nats(model, framed_rows))
        targets = np.concatenate([tokens[len(tokens) - n:] for tokens, n in framed_rows])
        music = nats[targets < ids.suffix]
        rows[name] = {"middle": float(music.mean()), "last_bar": float(music[last].mean()),
                      "end": float(nats[targets == ids.end].mean())}
    for name, scorer in (("left only, plain prompt", model), ("left only, plain model", plain)):
        if scorer is not None:
            read = scorer.representation
            plain_rows = []
            for b, m, _ in parts:
                whole, left = with_any(read, np.concatenate([b, m])), with_any(read, b)
                plain_rows.append((np.concatenate([[start], whole]), len(whole) - len(left)))
            nats = np.concatenate(target_nats(scorer, plain_rows))
            targets = np.concatenate([tokens[len(tokens) - n:] for tokens, n in plain_rows])
            nats = nats[targets < read.base.vocab_size] if isinstance(read, mgf.Conditioned) else nats
            rows[name] = {"middle": float(nats.mean()), "last_bar": float(nats[last].mean())}
    reference = rows["left only, plain model" if plain is not None else "left only, plain prompt"]["middle"]
    for row in rows.values():
        row["vs_left_only"] = row["middle"] / reference - 1
    result = {"gap": f"{gap[0]}-{gap[1]}", "pieces": len(parts), "middle_tokens": int(sum(len(m) for _, m, _ in parts)),
              "cross_entropy": rows}
    if takes:
        edges = [(gap[0] - 1) * per_bar, gap[1] * per_bar]
        filled = [mgf.infill_piece(model, piece, bars=gap, seed=seed) for piece in cut for seed in range(takes)]
        lines = [seam(clock, representation.to_notes(p), bar * per_bar) for p in pieces
                 for bar in range(1, int(clock.steps(p)[-1]) // per_bar)]
        result["seams"] = {
            "corpus bar lines": figures(lines),
            "true, both seams": figures([seam(clock, representation.to_notes(p), e) for p in cut for e in edges]),
            "fills, left seam": figures([seam(clock, representation.to_notes(p), edges[0]) for p in filled]),
            "fills, right seam": figures([seam(clock, representation.to_notes(p), edges[1]) for p in filled]),
        }
    return result


def table(result: dict) -> str:
    """One gap's figures as text."""
    lines = [f"bars {result['gap']}: {result['pieces']} held-out pieces, {result.get('middle_tokens', 0)} middle tokens"]
    for name, row in result.get("cross_entropy", {}).items():
        end = f"   END {row['end']:.2f}" if "end" in row else ""
        lines.append(f"  {name:<26} {row['middle']:.4f} nats/token  {row['vs_left_only']:+7.1%}   last bar "
                     f"{row['last_bar']:.4f}{end}")
    for name, row in result.get("seams", {}).items():
        if row["seams"]:
            lines.append(f"  {name:<26} |interval| mean {row['interval_mean']:.2f} p90 {row['interval_p90']:.1f}, "
                         f"median onset gap {row['onset_gap_median']:.3f} s  ({row['seams']} seams)")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="a bundle trained with mgf train --infill")
    parser.add_argument("--plain", help="a bundle of the same size trained without --infill, scored left only")
    parser.add_argument("--data", nargs="+", help="the training data (default: the bundle's training metadata)")
    parser.add_argument("--val-split", type=float, default=0.1, help="the split mgf train made (default: 0.1)")
    parser.add_argument("--gaps", nargs="+", default=["5-8", "5-12"], help="gaps in bars, from 1 (default: 5-8 5-12)")
    parser.add_argument("--bars", type=int, default=16, help="bars of each piece kept (default: 16)")
    parser.add_argument("--takes", type=int, default=1, help="fills generated per piece and gap for the seams (0: none)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    model = mgf.load_model(args.bundle)
    if model.infill is None:
        parser.error(f"{args.bundle} cannot infill: train it with mgf train --infill RATE")
    plain = mgf.load_model(args.plain) if args.plain else None
    sources = args.data or bundle.read_metadata(args.bundle)["training"]["data"]
    pieces = held_out(model, sources, args.val_split)
    gaps = [(int(first), int(last)) for first, last in (gap.split("-") for gap in args.gaps)]
    results = [measure(model, plain, pieces, gap, args.bars, args.takes) for gap in gaps]
    print(json.dumps(results, indent=1) if args.json else "\n".join(table(result) for result in results))


if __name__ == "__main__":
    main()
