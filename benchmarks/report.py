"""Markdown tables of the benchmarks: the step against the roofline, against its peers, and end to end.

    python benchmarks/report.py [--only step,peers,generate,contention] [--from DIR] [--save DIR] [--write] [--quick]

Runs each chosen benchmark file with pytest-benchmark (``bench_step.py``, ``bench_peers.py``,
``bench_generate.py``, ``bench_contention.py``; about 15 minutes for all four: keep the machine
idle, but for the load the contention benchmark makes itself), or reads the JSON
files a ``--save DIR`` run left in ``DIR`` (``--from DIR``), and prints the tables.  ``--write``
also replaces this script's sections of ``benchmarks/RESULTS.md``, keeping every other section.
``--quick`` shortens every benchmark (for checking the harness, not for RESULTS.md).  The machine
line always describes the machine running this script.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from bench_step import roofline  # benchmarks/ is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
BENCH_OPTIONS = ["--benchmark-min-rounds=50", "--benchmark-max-time=2"]
QUICK_OPTIONS = ["--benchmark-min-rounds=5", "--benchmark-max-time=0.2"]
FILES = {"step": "bench_step.py", "peers": "bench_peers.py", "generate": "bench_generate.py",
         "contention": "bench_contention.py"}
TITLES = {"step": "Step benchmarks", "peers": "Peers: ONNX Runtime and numpy", "generate": "End to end: generation and the CLI",
          "contention": "Two threads with the cores busy"}
BARS = [  # (hidden, batch, minimum numpy / native-1t)
    (256, 1, 2.5),
    (256, 64, 2.0),
    (512, 1, 1.0),
]
PEER_TARGET = 3.0  # issue 23: the best precision at least 3x ONNX Runtime at every shape, at equal threads
SIMD_FLAGS = re.compile(r"^(sse4_\d|avx\w*|fma|f16c|amx\w*)$")


def run_benchmarks(section: str, quick: bool, save: Path | None) -> dict:
    """Run one benchmark file under pytest-benchmark and return its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        path = (save or Path(tmp)) / f"{section}.json"
        command = [sys.executable, "-m", "pytest", str(HERE / FILES[section]), "-q", f"--benchmark-json={path}"]
        options = QUICK_OPTIONS if quick else BENCH_OPTIONS
        subprocess.run([*command, *options], check=True, cwd=HERE.parent, stdout=sys.stderr)
        return json.loads(path.read_text())


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_flags() -> str:
    """The SIMD flags of the first CPU in /proc/cpuinfo (what a kernel may use), or 'unknown'."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    found = [flag for flag in line.partition(":")[2].split() if SIMD_FLAGS.match(flag)]
    return " ".join(found) or "unknown"


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
        f"{model}, {os.cpu_count()} cores (1-min load average {os.getloadavg()[0]:.2f}); CPU flags: {cpu_flags()}; "
        f"Python {platform.python_version()}, numpy {_version('numpy')} ({blas}), scipy {_version('scipy')}, "
        f"onnxruntime {_version('onnxruntime')}, onnx {_version('onnx')}; {datetime.date.today().isoformat()}"
    )


# -- the step against the roofline (bench_step.py) ---------------------------------------------

def collect(results: dict) -> tuple[dict, dict, list[str]]:
    """Medians in us by (hidden, batch) then method, the probe's figures, the methods in run order."""
    table: dict[tuple[int, int], dict[str, float]] = {}
    probe: dict = {}
    methods: list[str] = []
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        row = table.setdefault((info["hidden"], info["batch"]), {"limit": info["roofline_us"]})
        row[info["method"]] = bench["stats"]["median"] * 1e6
        probe = {k: info[k] for k in ("bandwidth_gbs", "peak_gflops", "gemm_step_gflops")}
        if info["method"] not in methods:
            methods.append(info["method"])
    return dict(sorted(table.items())), probe, methods


def markdown_table(table: dict, methods: list[str]) -> str:
    head = ["shape", *methods, "roofline limit", "numpy / native-1t", "native-1t / limit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (hidden, batch), row in table.items():
        cells = [f"H={hidden} B={batch}", *(f"{row[m]:.1f}" if m in row else "" for m in methods), f"{row['limit']:.1f}"]
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
        "Run on an idle machine (hence the load average above); with the cores kept busy by other processes, see "
        "the section on two threads under load.\n\n"
        f"At H=256/B=64 the step is compute-bound ({flops / 1e6:.1f} MFLOP).  The 64x256x1024 float32 matmul of the "
        f"recurrent kernel ran at {probe['gemm_step_gflops']:.1f} GFLOP/s single-threaded in this run "
        f"({probe['gemm_step_gflops'] / probe['peak_gflops'] * 100:.0f}% of the 1024^3 rate), i.e. {recurrent_us:.0f} us: "
        f"{recurrent_us / row['numpy'] * 100:.0f}% of the numpy reference's {row['numpy']:.0f} us step.  "
        f"Meeting the 2x bar there means a whole step in {target_us:.0f} us, i.e. "
        f"{flops / target_us / 1e3:.1f} GFLOP/s for the step's FLOPs, against the {probe['peak_gflops']:.1f} GFLOP/s "
        f"peak probed on one core; native-1t ran at {flops / row['native-1t'] / 1e3:.1f} GFLOP/s."
    )


def step_section(results: dict) -> str:
    table, probe, methods = collect(results)
    return (
        "Median microseconds per `model.step` (V=130, E=64, 1 LSTM layer, BLAS at 1 thread).\n\n"
        f"{markdown_table(table, methods)}\n\n## The bar (numpy / native-1t)\n\n{bars(table)}\n\n"
        f"## Notes\n\n{notes(table, probe)}"
    )


# -- the step against its peers (bench_peers.py) -----------------------------------------------

def medians(results: dict) -> tuple[dict, list]:
    """``{(hidden, batch): {method: median us per step}}`` from each shape's interleaved rounds, and the methods in run order."""
    found: dict = {}
    methods: list[str] = []
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        found[(info["hidden"], info["batch"])] = info["medians"]
        methods += [m for m in info["medians"] if m not in methods]
    return dict(sorted(found.items())), methods


def fastest(row: dict[str, float], prefix: str, threads: int, only: str = "") -> tuple[float, str] | None:
    """The lowest median among methods named ``prefix...-{threads}t`` (containing ``only``), with its name."""
    found = [(us, m) for m, us in row.items() if m.startswith(prefix) and m.endswith(f"-{threads}t") and only in m]
    return min(found) if found else None


def peers_section(results: dict) -> str:
    table, methods = medians(results)
    rounds = min(bench["extra_info"]["rounds"] for bench in results["benchmarks"])
    block = results["benchmarks"][0]["extra_info"]["block_seconds"]
    shapes = list(table)
    head = "| method | " + " | ".join(f"{h}/{b}" for h, b in shapes) + " |\n|---|" + "--:|" * len(shapes)
    rows = [f"| {m} | " + " | ".join(f"{table[s][m]:,.1f}" if m in table[s] else "" for s in shapes) + " |"
            for m in methods]
    for threads in (1, 2):
        targets = [fastest(table[s], "ort", threads) for s in shapes]
        if any(targets):
            cells = " | ".join(f"**{t[0] / PEER_TARGET:,.1f}**" if t else "" for t in targets)
            rows.append(f"| **target: ONNX Runtime {threads}t (fastest way) / {PEER_TARGET:g}** | {cells} |")

    ratio_head = ("| H/B | ONNX Runtime 1t | mgf 1t (best) | ORT / mgf, 1t | ORT / mgf fp32, 1t "
                  "| ONNX Runtime 2t | mgf 2t (best) | ORT / mgf, 2t | ORT / mgf fp32, 2t |\n|---|" + "--:|" * 8)
    ratio_rows, verdicts = [], []
    for shape in shapes:
        row, cells = table[shape], [f"{shape[0]}/{shape[1]}"]
        for threads in (1, 2):
            ort, best, fp32 = fastest(row, "ort", threads), fastest(row, "native", threads), \
                fastest(row, "native", threads, "-fp32-")
            if not (ort and best):
                cells += ["", "", "", ""]
                continue
            ratio = ort[0] / best[0]
            verdicts.append(ratio >= PEER_TARGET)
            cells += [f"{ort[0]:,.1f} ({ort[1].removesuffix(f'-{threads}t')})",
                      f"{best[0]:,.1f} ({best[1].removeprefix('native-').removesuffix(f'-{threads}t')})",
                      f"**{ratio:.2f}x**" if ratio >= PEER_TARGET else f"{ratio:.2f}x",
                      f"{ort[0] / fp32[0]:.2f}x" if fp32 else ""]
        ratio_rows.append("| " + " | ".join(cells) + " |")
    return (
        "Median microseconds per greedy step (one `step`, then the argmax of its logits is the next input; "
        "V=130, E=64, one LSTM layer, the same random weights for every method; columns are H/B).  "
        "`ort` runs the step as an ONNX graph written with `onnx.helper` (`benchmarks/onnx_step.py`: "
        "embedding Gather, MatMul + Add per gate block, Split, Sigmoid/Tanh, dense MatMul), `ort-folded` "
        "the same with the embedding, input kernel and bias folded into one [V, 4H] table (as mgf's kernel "
        "does); ONNX Runtime with sequential execution, all graph optimisations, inputs and outputs bound to "
        "preallocated arrays.  These and `native-*` step from Python.  Each tool's own loop runs 256 steps in "
        "one call, timed per step: `ort-loop` is an ONNX `Loop` over the folded step and its ArgMax, "
        "`native-*-loop` is `mgf.generate` with the greedy sampler (the loop in C).  numpy is "
        "`mgf.kernel.reference.NumpyLSTM` with BLAS at one thread.  Every fp32 method was checked against it "
        "(teacher-forced logits, rtol = atol = 1e-4; the loops: their first 16 tokens) before timing.  A shape's "
        f"methods were timed interleaved: {rounds} rounds, each a turn of about {block:g} s of every method (after a "
        "fifth of that untimed), the order rotating, so that the ratios below compare figures from the same "
        "minutes.\n\n"
        f"{head}\n" + "\n".join(rows) + "\n\n"
        f"## Ratio: ONNX Runtime / mgf (target {PEER_TARGET:g}x at equal threads)\n\n"
        "ONNX Runtime is the fastest of its three ways at that thread count; mgf is the `native` backend at "
        "its fastest precision and way (named), and at fp32 alone in the last column of each half.  Bold: the "
        "target met.\n\n"
        f"{ratio_head}\n" + "\n".join(ratio_rows) + "\n\n"
        f"Target met in {sum(verdicts)} of {len(verdicts)} cells.\n\n" + amx_gains(table) + fp32_limits(results, table)
    )


def amx_gains(table: dict) -> str:
    """The step with the reduced-precision products on the AMX tiles against the same on AVX-512 BF16/VNNI (the
    ``-avx512`` methods bench_peers adds on an AMX CPU), per shape and thread count; empty elsewhere."""
    lines = []
    for (hidden, batch), row in table.items():
        cells = []
        for precision in ("int8", "bf16"):
            for threads in (1, 2):
                tiles, vector = row.get(f"native-{precision}-{threads}t"), row.get(f"native-{precision}-avx512-{threads}t")
                cells.append(f"{vector:,.1f} / {tiles:,.1f} = {vector / tiles:.2f}x" if tiles and vector else "")
        if any(cells):
            lines.append(f"| {hidden}/{batch} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    return (
        "**AMX.**  The same step with its int8 or bf16 products on AVX-512 VNNI/BF16 (`MGF_ISA=avx512`) and on the "
        "AMX tiles (the default where the CPU has them: int8 from 2 rows, so B = 1 runs the same code; bf16 from 1 row): "
        "microseconds, VNNI / AMX.\n\n"
        "| H/B | int8 1t | int8 2t | bf16 1t | bf16 2t |\n|---|--:|--:|--:|--:|\n" + "\n".join(lines) + "\n\n"
    )


def fp32_limits(results: dict, table: dict) -> str:
    """Whether fp32 can be 1.2x ONNX Runtime at all: the rate that would take, against one core's peak in this run."""
    info = results["benchmarks"][0]["extra_info"]
    if "peak_gflops" not in info:
        return ""
    peak, bandwidth = info["peak_gflops"], info["bandwidth_gbs"]
    lines = ["| H/B | ONNX Runtime 1t (us) | its fp32 rate (GFLOP/s) | 1.2x ORT needs | one core's limit "
             "| fp32 1.2x possible | mgf fp32 1t (us) | its rate (GFLOP/s) | of the sgemm probe |",
             "|---|--:|--:|--:|--:|---|--:|--:|--:|"]
    for (hidden, batch), row in table.items():
        ort = fastest(row, "ort", 1)
        if not ort:
            continue
        limits = roofline(hidden, batch, bandwidth, peak)
        needed_us = ort[0] / 1.2
        ours = fastest(row, "native-fp32", 1)
        mine = (f"{ours[0]:,.1f} | {limits['flops'] / ours[0] / 1e3:.1f} | {limits['flops'] / ours[0] / 1e3 / peak:.0%}"
                if ours else " | | ")
        lines.append(f"| {hidden}/{batch} | {ort[0]:,.1f} | {limits['flops'] / ort[0] / 1e3:.1f} | {needed_us:,.1f} us "
                     f"({limits['flops'] / needed_us / 1e3:.1f} GFLOP/s) | {limits['limit_us']:,.1f} us | "
                     f"{'yes' if limits['limit_us'] <= needed_us else 'no'} | {mine} |")
    return (
        "**fp32 against ONNX Runtime, and the physical limit.**  The limit is max(FLOPs / peak, bytes / L3 "
        "bandwidth) of the roofline of the step benchmark, with this run's probe "
        f"({peak:.1f} GFLOP/s 1024^3 sgemm, {bandwidth:.1f} GB/s), and 1.2x needs a step below it: where the sixth "
        "column says no for weights read from L3 (H = 512: 4 MiB of fp32 recurrent weights, against 2 MiB of L2), no "
        "fp32 kernel can be 1.2x faster than ONNX Runtime on one core; at H = 256 they stay in L2, faster than the L3 "
        "this limit counts, so a step can pass it.  The probe is itself a program (OpenBLAS), so a tuned peer can sit a "
        "little past it; where 1.2x asks for more than the probe by a margin, it asks for more than the core.  The "
        "last columns give mgf's fastest fp32 way on one thread, its rate on the step's FLOPs and that rate's "
        "share of the sgemm probe.  Reduced precision is how mgf gets past the fp32 limit (the table above).\n\n"
        + "\n".join(lines)
    )


# -- end to end (bench_generate.py) ------------------------------------------------------------

def generate_section(results: dict) -> str:
    runs: dict = {}
    cli = None
    shared: dict[int, float] = {}
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        if info["kind"] == "cli":
            cli = (bench["stats"]["median"], info["peak_rss_mb"], info["command"], bench["stats"]["rounds"])
        elif info["kind"] == "threads":
            shared[info["callers"]] = info["tokens"] / bench["stats"]["median"]
        else:
            runs.setdefault((info["model"], info["precision"]), {})[info["kind"]] = (bench["stats"]["median"], info)
    head = ("| model | precision | bare step (us) | bare steps/s | `mgf.generate` 2,000 tokens (ms) | tokens/s "
            "| generate / bare rate | loop cost per token (us) |")
    lines = [head, "|---|---|" + "--:|" * 6]
    for (model, precision), kinds in runs.items():
        if "generate" not in kinds:
            continue
        generate_s, info = kinds["generate"]
        step_s = info.get("bare_step_s") or (kinds["step"][0] if "step" in kinds else None)  # older runs: apart
        if step_s is None:
            continue
        per_token = generate_s / info["tokens"]
        lines.append(
            f"| {model} | {precision} | {step_s * 1e6:.1f} | {1 / step_s:,.0f} | {generate_s * 1e3:,.1f} "
            f"| {1 / per_token:,.0f} | {step_s / per_token:.0%} | {(per_token - step_s) * 1e6:.1f} |"
        )
    text = (
        "The shipped models (`core/models/*.safetensors`), native backend at one thread.  `mgf.generate` with the "
        "temperature sampler (T=1, seed 0, one output; median of 15 runs) against the bare greedy step at "
        "batch 1, stepped from Python 256 times before each of those runs (so that both rates come from the same "
        "minutes); the loop cost per token is what sampling, the checks and the loop add to a step.\n\n"
        + "\n".join(lines)
    )
    if {1, 2} <= set(shared):
        text += (f"\n\nOne loaded `notes` model (fp32, one kernel thread) shared by Python threads, each running "
                 f"`mgf.generate` of 2,000 tokens with its own state: {shared[1]:,.0f} tokens/s from one thread, "
                 f"{shared[2]:,.0f} tokens/s from two at once ({shared[2] / shared[1]:.2f}x on the 2 cores).")
    if cli:
        wall, rss, command, rounds = cli
        text += (f"\n\n`{command}` as a fresh process (imports, model loading, writing the .mid; page cache and "
                 f"bytecode cache warm, as after the first run of an installed mgf): "
                 f"**{wall:.2f} s** wall (median of {rounds}), peak RSS **{rss:.0f} MB**.")
    return text


# -- two threads under load (bench_contention.py) ---------------------------------------------

def contention_section(results: dict) -> str:
    runs: dict = {}
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        key = (info["hidden"], info["batch"], info["precision"])
        runs.setdefault(key, {})[info["threads"], info["load"]] = (bench["stats"]["median"] * 1e6, bench["stats"]["mean"] * 1e6)
    lines = ["| H/B | weights | 1t idle | 2t idle | 1t busy | 2t busy | 2t / 1t busy, median | 2t / 1t busy, mean |",
             "|---|---|" + "--:|" * 6]
    worst = 0.0
    for (hidden, batch, precision), row in sorted(runs.items()):
        if len(row) < 4:
            continue
        ratio, mean_ratio = row[2, "busy"][0] / row[1, "busy"][0], row[2, "busy"][1] / row[1, "busy"][1]
        worst = max(worst, ratio, mean_ratio)
        cells = [f"{hidden}/{batch}", precision, *(f"{row[t, load][0]:,.1f}" for load in ("idle", "busy") for t in (1, 2)),
                 f"{ratio:.2f}x", f"{mean_ratio:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "Median microseconds per `model.step` (V=130, E=64, one LSTM layer), native backend at 1 and 2 threads, "
        "on an idle machine and with one busy-looping process per core (`benchmarks/bench_contention.py`).  "
        "The kernel's threads (`core/kernel/pool.h`) spin for at most 50 us and then sleep; the caller takes any chunk "
        "a worker has not started, and runs alone for a while after it had to wait for a worker preempted inside "
        "its chunk.\n\n"
        + "\n".join(lines)
        + f"\n\nWorst 2-thread / 1-thread ratio under load: {worst:.2f}x (the issue's bound: 2x).  With OpenMP's "
        "spinning barrier this case took about 48 ms per 2-thread step at H=256/B=1, against 17 us on one thread."
    )


SECTIONS = {"step": step_section, "peers": peers_section, "generate": generate_section, "contention": contention_section}


def replace_sections(text: str, sections: dict[str, str]) -> str:
    """``text`` with each top-level (``# title``) section in ``sections`` replaced or appended; the others kept."""
    parts = re.split(r"(?m)^(?=# )", text)
    kept = {part.splitlines()[0][2:].strip(): part for part in parts if part.startswith("# ")}
    preamble = "".join(part for part in parts if not part.startswith("# "))
    for title, body in sections.items():
        kept[title] = f"# {title}\n\n{body.rstrip()}\n\n"
    order = [t for t in TITLES.values() if t in kept] + [t for t in kept if t not in TITLES.values()]
    return (preamble + "".join(kept[t] for t in order)).rstrip() + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="step,peers,generate,contention", help="comma-separated sections (default: all)")
    parser.add_argument("--from", dest="source", type=Path, help="read <section>.json from this folder instead of running")
    parser.add_argument("--save", type=Path, help="keep each run's pytest-benchmark JSON here as <section>.json")
    parser.add_argument("--write", action="store_true", help="also replace these sections of benchmarks/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="short runs, to check the harness")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    written = {}
    for section in chosen:
        if args.source:
            source = args.source / f"{section}.json"
            if not source.is_file():
                parser.error(f"{source} does not exist (write it with --save)")
            results = json.loads(source.read_text())
        else:
            results = run_benchmarks(section, args.quick, args.save)
        quick = (" Quick run (`--quick`, machine busy): it checks the harness; its figures are not results.  The full "
                 "run is `python benchmarks/report.py --write` on an idle machine.") if args.quick else ""
        body = (f"Written by `python benchmarks/report.py --write` (this section alone: `--only {section}`).{quick}\n\n"
                f"Machine: {machine()}.\n\n{SECTIONS[section](results)}")
        written[TITLES[section]] = body
        print(f"# {TITLES[section]}\n\n{body}\n")
    if args.write:
        path = HERE / "RESULTS.md"
        path.write_text(replace_sections(path.read_text() if path.exists() else "", written))


if __name__ == "__main__":
    main()
