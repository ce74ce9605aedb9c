"""``mgf dataset --repr midi`` on a real-world-like MIDI collection: files/s and MB/s through symusic and through mido.

    python benchmarks/bench_midi_read.py [--files 300] [--workers 1] [--repeat 3] [--keep DIR]

Builds the collection with mido (the generators of ``tests/plugins/representations/test_repr_midi_symusic.py``, seeded): multitrack
songs with drums at 96 to 960 ticks per beat, type 0 and 1, about 2.5 minutes each; piano performances of
3 to 8 minutes; and one in fifty a piano performance of 20 to 25 minutes.  Then runs ``mgf dataset`` on it
in fresh processes with an empty cache each (``MGF_CACHE_DIR`` in a temporary directory), as installed
(symusic) and with symusic hidden (mido), alternating ``--repeat`` times, and prints the best of each as a
Markdown table for ``RESULTS.md``; each with the cache (written to disk and synced file by file, as a
first run writes it) and with ``--no-cache``.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from test_repr_midi_symusic import piano, song  # noqa: E402 - the generators the equality tests use

HIDE_SYMUSIC = "import sys; sys.modules['symusic'] = None; from mgf.cli.main import main; sys.exit(main())"
USE_SYMUSIC = "import sys; from mgf.cli.main import main; sys.exit(main())"


def collection(folder: Path, files: int, seed: int = 0) -> list[Path]:
    rng, paths = random.Random(seed), []
    for number in range(files):
        name = folder / f"{number:04d}.mid"
        if number % 50 == 49:
            paths.append(piano(name, minutes=rng.uniform(20, 25), seed=number))
        elif number % 10 == 9:
            paths.append(piano(name, minutes=rng.uniform(3, 8), seed=number))
        else:
            paths.append(song(name, ticks_per_beat=rng.choice([96, 120, 192, 384, 480, 960]), kind=rng.choice([0, 1]),
                              seed=number))
    return paths


def dataset(folder: Path, code: str, workers: int, *options: str) -> float:
    """Seconds of one ``mgf dataset`` run on ``folder``, in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, MGF_CACHE_DIR=os.path.join(scratch, "cache"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, "dataset", str(folder), "--repr", "midi", "--workers", str(workers),
                        "-o", os.path.join(scratch, "out"), "--quiet", *options], check=True, env=env)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each reader, alternating; the best counts")
    parser.add_argument("--keep", help="build the collection here (kept) instead of a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        paths = sorted(folder.glob("*.mid")) if args.keep and any(folder.glob("*.mid")) else collection(folder, args.files)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        runs: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):  # alternating, so that a busy spell of the machine hits both
            for cache, options in (("cache", ()), ("--no-cache", ("--no-cache",))):
                for name, code in (("mido", HIDE_SYMUSIC), ("symusic", USE_SYMUSIC)):
                    runs.setdefault((cache, name), []).append(dataset(folder, code, args.workers, *options))
        best = {key: min(seconds) for key, seconds in runs.items()}
    print(f"{len(paths)} files, {megabytes:.1f} MB, --workers {args.workers}\n")
    print("| `mgf dataset` | reader | seconds | files/s | MB/s | speed-up |\n|---|---|---:|---:|---:|---:|")
    for (cache, name), seconds in best.items():
        speed_up = best[(cache, "mido")] / seconds
        print(f"| {cache} | {name} | {seconds:.1f} | {len(paths) / seconds:.1f} | {megabytes / seconds:.2f} | {speed_up:.1f}x |")


if __name__ == "__main__":
    main()
