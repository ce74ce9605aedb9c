"""Scaling of the data pipeline: cold encoding with 1 and N local workers, and `mgf train`'s memory as data grows.

    python benchmarks/bench_scaling.py encode [--source corpus:essenFolksong] [--repr notes] [--workers 1 2]
    python benchmarks/bench_scaling.py rss [--files 5000 10000]

``encode`` runs ``mgf dataset SOURCE --workers N`` for each N back to back, each with an empty
``MGF_CACHE_DIR`` (cold), and prints the wall times and their ratio to the first.  ``rss``
writes N small MIDI files (mido, seeded: the same files every run), encodes them into a dataset
directory and trains one epoch of a small model from it, and prints the peak resident memory of
``mgf train`` (``wait4``'s ``ru_maxrss``) for each N: it should stay flat as N doubles.
A timing measures a whole command (start-up included), as a user would see it.

Measured on the 2-core development machine (AMD EPYC, shared with other jobs, so each pair was
run back to back), ``corpus:essenFolksong`` (31 ABC files, 8,514 tunes) with ``--repr notes``:

    --workers 1: 878.8 s, --workers 2: 400.5 s  (0.46x; heavy load from other jobs)
    --workers 2: 155.0 s, --workers 1: 331.3 s  (0.47x; lighter load)

and ``mgf train`` (1 LSTM layer of 64, one epoch) on a dataset of small MIDI files, ``--repr midi``
(about 119 tokens a file):

    5,000 files (0.6M tokens): peak RSS 685 MB
    10,000 files (1.2M tokens): peak RSS 712 MB
    20,000 files (2.4M tokens): peak RSS 750 MB
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

MGF = [sys.executable, "-m", "mgf.cli.main"]


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """``(wall seconds, peak RSS in MB)`` of ``command``; raises if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {error[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def encode(source: str, representation: str, workers: list[int]) -> None:
    first = None
    for count in workers:
        with tempfile.TemporaryDirectory() as cache:
            seconds, _ = run([*MGF, "dataset", source, "--repr", representation, "--workers", str(count), "--quiet"],
                             {**os.environ, "MGF_CACHE_DIR": cache})
        first = first or seconds
        print(f"encode {source} --repr {representation} --workers {count}: {seconds:.1f} s cold, "
              f"{seconds / first:.2f}x the first", flush=True)


def write_midi_files(folder: str, count: int, seed: int = 0) -> None:
    """``count`` small one-track MIDI files (16 to 64 notes each), the same for the same seed."""
    import mido
    import numpy as np

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        track = mido.MidiTrack()
        pitch = int(rng.integers(48, 72))
        for _ in range(int(rng.integers(16, 65))):
            pitch = int(np.clip(pitch + rng.integers(-4, 5), 36, 96))
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=int(rng.choice([120, 240, 480]))))
        song = mido.MidiFile(ticks_per_beat=480)
        song.tracks.append(track)
        song.save(os.path.join(folder, f"{i:06d}.mid"))


def rss(counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "MGF_CACHE_DIR": os.path.join(scratch, "cache")}
        for count in counts:
            folder, dataset = os.path.join(scratch, f"midi-{count}"), os.path.join(scratch, f"dataset-{count}")
            write_midi_files(folder, count)
            seconds, _ = run([*MGF, "dataset", folder, "--repr", "midi", "-o", dataset, "--quiet"], env)
            train, peak = run([*MGF, "train", "--data", dataset, "--hidden", "64", "--layers", "1", "--embedding", "16",
                               "--seq-len", "64", "--batch-size", "64", "--epochs", "1", "--quiet",
                               "-o", os.path.join(scratch, f"m{count}.safetensors")], env)
            print(f"{count} files: encoded in {seconds:.1f} s; mgf train (1 epoch) {train:.1f} s, "
                  f"peak RSS {peak:.0f} MB", flush=True)


def collection(count: int) -> None:
    """Encode ``count`` generated MIDI files with 1 and 2 local workers and on a 2-worker Dask LocalCluster."""
    import json

    from dask.distributed import LocalCluster

    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "midi")
        write_midi_files(folder, count)
        runs = [("1 local worker", ["--workers", "1"]), ("2 local workers", ["--workers", "2"])]
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            runs.append(("Dask LocalCluster, 2 workers", ["--scheduler", cluster.scheduler_address]))
            for label, options in runs:
                dataset = os.path.join(scratch, f"dataset-{len(os.listdir(scratch))}")
                env = {**os.environ, "MGF_CACHE_DIR": os.path.join(scratch, f"cache-{label}")}
                seconds, peak = run([*MGF, "dataset", folder, "--repr", "midi", "-o", dataset, "--quiet", *options], env)
                manifest = json.load(open(os.path.join(dataset, "manifest.json")))
                tokens = sum(shard["tokens"] for shard in manifest["shards"]) if "shards" in manifest else 0
                print(f"encode {count} MIDI files, {label}: {seconds:.1f} s, {count / seconds:.0f} files/s, "
                      f"{tokens / seconds:,.0f} tokens/s, peak RSS of mgf {peak:.0f} MB", flush=True)


def generation(count: int, steps: int) -> None:
    """``mgf generate --num-outputs count`` with 1 and 2 worker processes."""
    with tempfile.TemporaryDirectory() as scratch:
        first = None
        for workers in (1, 2):
            out = os.path.join(scratch, f"w{workers}")
            os.mkdir(out)
            seconds, peak = run([*MGF, "generate", "--repr", "notes", "--num-outputs", str(count), "--steps", str(steps),
                                 "--seed", "1", "--workers", str(workers), "--quiet", "-o", os.path.join(out, "t.mid")],
                                dict(os.environ))
            first = first or seconds
            print(f"generate {count} pieces of {steps} tokens, {workers} worker(s): {seconds:.1f} s, "
                  f"{count / seconds:.0f} pieces/s, {count * steps / seconds:,.0f} tokens/s, "
                  f"{seconds / first:.2f}x the first, peak RSS of the main process {peak:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("encode")
    p.add_argument("--source", default="corpus:essenFolksong")
    p.add_argument("--repr", default="notes")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p = commands.add_parser("rss")
    p.add_argument("--files", type=int, nargs="+", default=[5000, 10000])
    p = commands.add_parser("collection")
    p.add_argument("--files", type=int, default=5000)
    p = commands.add_parser("generate")
    p.add_argument("--pieces", type=int, default=2000)
    p.add_argument("--steps", type=int, default=256)
    args = parser.parse_args()
    if args.command == "encode":
        encode(args.source, args.repr, args.workers)
    elif args.command == "rss":
        rss(args.files)
    elif args.command == "collection":
        collection(args.files)
    else:
        generation(args.pieces, args.steps)


if __name__ == "__main__":
    main()
