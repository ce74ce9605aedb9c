"""Markdown table of the step benchmarks.

    python benchmarks/report.py [RESULTS.json] [--write]

Runs ``benchmarks/bench_step.py`` (about a minute; keep the machine idle), or reads a
``--benchmark-json`` file it wrote, and prints median microseconds per step by shape.
``--write`` also rewrites ``benchmarks/RESULTS.md``.  The machine line always describes the
machine running this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from bench_step import METHODS, roofline  # benchmarks/ is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
BENCH_OPTIONS = ["--benchmark-min-rounds=50", "--benchmark-max-time=2"]
BARS = [  # (hidden, batch, minimum numpy / native-1t)
    (256, 1, 2.5),
    (256, 64, 2.0),
    (512, 1, 1.0),
]


def run_benchmarks() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        command = [sys.executable, "-m", "pytest", str(HERE / "bench_step.py"), "-q", f"--benchmark-json={path}"]
        subprocess.run([*command, *BENCH_OPTIONS], check=True, cwd=HERE.parent, stdout=sys.stderr)
        return json.loads(path.read_text())


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    from threadpoolctl import threadpool_info

    import numpy  # noqa: F401  (loads its BLAS for threadpool_info)

    model = platform.processor() or "unknown CPU"
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name:"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    blas = ", ".join(
        f"{i['internal_api']} {i['version']} ({i.get('architecture')})" for i in threadpool_info() if i["user_api"] == "blas"
    )
    return (
        f"{model}, {os.cpu_count()} cores (1-min load average {os.getloadavg()[0]:.2f}); "
        f"Python {platform.python_version()}, numpy {_version('numpy')} ({blas}), scipy {_version('scipy')}"
    )


def collect(results: dict) -> tuple[dict, dict, list[str]]:
    """Medians in us by (hidden, batch) then method, the probe's figures, the methods present."""
    table: dict[tuple[int, int], dict[str, float]] = {}
    probe: dict = {}
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        row = table.setdefault((info["hidden"], info["batch"]), {"limit": info["roofline_us"]})
        row[info["method"]] = bench["stats"]["median"] * 1e6
        probe = {k: info[k] for k in ("bandwidth_gbs", "peak_gflops", "gemm_step_gflops")}
    methods = [m for m in METHODS if any(m in row for row in table.values())]
    return dict(sorted(table.items())), probe, methods


def markdown_table(table: dict, methods: list[str]) -> str:
    head = ["shape", *methods, "roofline limit", "numpy / native-1t", "native-1t / limit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (hidden, batch), row in table.items():
        cells = [f"H={hidden} B={batch}", *(f"{row[m]:.1f}" for m in methods), f"{row['limit']:.1f}"]
        cells += [f"{row['numpy'] / row['native-1t']:.2f}x", f"{row['native-1t'] / row['limit']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bars(table: dict) -> str:
    lines = []
    for hidden, batch, minimum in BARS:
        row = table[(hidden, batch)]
        speedup = row["numpy"] / row["native-1t"]
        verdict = "meets it" if speedup >= minimum else "does NOT meet it"
        lines.append(
            f"- H={hidden}/B={batch}: bar {minimum:g}x; native-1t is {speedup:.2f}x the numpy speed "
            f"({row['numpy']:.1f} us vs {row['native-1t']:.1f} us), {verdict}; "
            f"native-2t is {row['numpy'] / row['native-2t']:.2f}x."
        )
    return "\n".join(lines)


def notes(table: dict, probe: dict) -> str:
    row = table[(256, 64)]
    flops = roofline(256, 64, probe["bandwidth_gbs"], probe["peak_gflops"])["flops"]
    recurrent_us = 2 * 64 * 256 * 1024 / probe["gemm_step_gflops"] / 1e3
    target_us = row["numpy"] / 2
    return (
        "The roofline limit is max(bytes / bandwidth, FLOPs / peak) for one core, with bytes = float32 recurrent "
        "kernel (H x 4H) + dense kernel (H x V) + B gathered rows of the [V, 4H] input table, and FLOPs = "
        f"2 B (4H^2 + H V).  The probe in this run measured {probe['bandwidth_gbs']:.1f} GB/s (float32 gemv over an "
        f"8 MB matrix, L3-resident like the step's weights) and {probe['peak_gflops']:.1f} GFLOP/s (1024^3 sgemm), "
        "both single-threaded.  These are the native kernel's bytes and FLOPs (the numpy reference also multiplies "
        "the embedding by the kernel); native-2t uses two cores, so it can go below this single-core limit.  "
        "Run on an idle machine (hence the load average above): with both cores kept busy by two other "
        "processes, a separate check measured about 48 ms per native-2t step at H=256/B=1 (native-1t: 17 us).\n\n"
        f"At H=256/B=64 the step is compute-bound ({flops / 1e6:.1f} MFLOP).  The 64x256x1024 float32 matmul of the "
        f"recurrent kernel ran at {probe['gemm_step_gflops']:.1f} GFLOP/s single-threaded in this run "
        f"({probe['gemm_step_gflops'] / probe['peak_gflops'] * 100:.0f}% of the 1024^3 rate), i.e. {recurrent_us:.0f} us: "
        f"{recurrent_us / row['numpy'] * 100:.0f}% of the numpy reference's {row['numpy']:.0f} us step.  "
        f"Meeting the 2x bar there means a whole step in {target_us:.0f} us, i.e. "
        f"{flops / target_us / 1e3:.1f} GFLOP/s for the step's FLOPs, against the {probe['peak_gflops']:.1f} GFLOP/s "
        f"peak probed on one core; native-1t ran at {flops / row['native-1t'] / 1e3:.1f} GFLOP/s."
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", help="a pytest-benchmark JSON file (default: run the benchmarks now)")
    parser.add_argument("--write", action="store_true", help="also rewrite benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    header = f"Median microseconds per `model.step` (V=130, E=64, 1 LSTM layer, BLAS at 1 thread).\n\nMachine: {machine()}."
    results = json.loads(Path(args.json).read_text()) if args.json else run_benchmarks()
    table, probe, methods = collect(results)
    body = f"{header}\n\n{markdown_table(table, methods)}"
    print(body)
    if args.write:
        text = (
            f"# Step benchmarks\n\nWritten by `python benchmarks/report.py --write`.\n\n{body}\n\n"
            f"## The bar (numpy / native-1t)\n\n{bars(table)}\n\n## Notes\n\n{notes(table, probe)}\n"
        )
        (HERE / "RESULTS.md").write_text(text)


if __name__ == "__main__":
    main()
