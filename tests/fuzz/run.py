"""Fuzz every harness for a bounded time, each in its own process; exit 1 on any new crash, hang or memory blow-up.

    python tests/fuzz/run.py --seconds 60                 # the CI budget, split across the harnesses
    python tests/fuzz/run.py --seconds 1800 --keep-going --save   # a long local run

Each harness runs under libFuzzer's limits: an input must finish within ``--timeout`` seconds and
the process must stay under ``--rss-limit-mb``.  libFuzzer stops at the first finding; with
``--keep-going`` the harness is restarted on its grown corpus until its time is up, and
findings are told apart by where they happen.  ``--save`` copies each distinct finding to
``tests/fuzz/crashes/<harness>/`` (``tests/meta/test_fuzz.py`` replays those files); ``--known``
names findings still open, which are reported but do not fail the run.  The seed corpus
is ``tests/fuzz/seeds/<harness>/`` (``make_seeds.py`` rewrites it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.join(HERE, "fuzz.py")
SEEDS = os.path.join(HERE, "seeds")
CRASHES = os.path.join(HERE, "crashes")
HARNESSES = ("midi_read", "notes_read", "bundle_load", "primer_notes", "primer_midi", "primer_audio", "primer_tokens",
             "decode_notes", "decode_midi", "decode_audio", "decode_tokens", "draw", "generate_midi",
             "dataset_read", "cache_read", "keras_export")
#: libFuzzer flags of one harness: audio's Griffin-Lim costs about 7 ms per token, so its inputs stay
#: short enough (at most 300 ids) to finish well within the time limit
FLAGS = {"decode_audio": ["-max_len=600"]}


@dataclass
class Finding:
    signature: str  # see signature(): tells findings apart
    artifact: str
    output: str

    @property
    def kind(self) -> str:
        return self.signature.split(":")[0]


@dataclass
class Report:
    harness: str
    executions: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    def distinct(self) -> dict[str, Finding]:
        """One finding per signature, the first that left an input to replay."""
        found: dict[str, Finding] = {}
        for finding in self.findings:
            if finding.signature not in found or not found[finding.signature].artifact:
                found[finding.signature] = finding
        return found


def limits(timeout: int, rss_limit_mb: int) -> list[str]:
    """The libFuzzer flags that bound one input's time and the process's memory."""
    return [f"-timeout={timeout}", f"-rss_limit_mb={rss_limit_mb}"]


def command(harness: str, *arguments: str) -> list[str]:
    return [sys.executable, FUZZ, harness, *arguments]


def signature(output: str) -> str:
    """``kind: what at file:line`` of a finding: kind is crash, hang or memory; the place is the innermost mgf frame."""
    if "libFuzzer: out-of-memory" in output:
        kind, detail = "memory", "out-of-memory"
    elif "libFuzzer: timeout" in output:
        kind, detail = "hang", "timeout"
    else:
        errors = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception|Violation|Iteration|Exit))\b", output, re.MULTILINE)
        detail = errors[-1] if errors else "died"
        kind = "memory" if detail == "MemoryError" else "crash"
    frames = re.findall(r'File "([^"]+)", line (\d+)', output)
    ours = [f for f in frames if "/tests/fuzz/" not in f[0] and "/boundary.py" not in f[0]]
    mgf_frames = [f for f in ours if "site-packages" not in f[0] and "/lib/python" not in f[0]]
    where = (mgf_frames or ours or [("?", "?")])
    path, line = where[0] if kind == "hang" else where[-1]  # a hang dump lists the innermost frame first
    path = re.sub(r"^.*?/(core|plugins|cli)/", r"\1/", path)  # as in the repository, wherever mgf is imported from
    return f"{kind}: {detail} at {path}:{line}"


def fuzz(harness: str, seconds: float, artifacts: str, corpus: str, timeout: int, rss_limit_mb: int,
         keep_going: bool, seed: int | None, verbose: bool) -> Report:
    """Fuzz ``harness`` for about ``seconds``; findings go to ``artifacts``, new inputs to ``corpus``."""
    report = Report(harness)
    os.makedirs(artifacts, exist_ok=True)
    os.makedirs(corpus, exist_ok=True)
    deadline = time.monotonic() + seconds
    while True:
        left = int(deadline - time.monotonic())
        if left < 1:
            break
        flags = [*limits(timeout, rss_limit_mb), *FLAGS.get(harness, []), f"-max_total_time={left}", "-print_final_stats=1",
                 f"-artifact_prefix={artifacts}{os.sep}"]
        if seed is not None:
            flags.append(f"-seed={seed}")
        started = time.monotonic()
        done = subprocess.run(command(harness, *flags, corpus, os.path.join(SEEDS, harness)), check=False,
                              capture_output=True, text=True, errors="replace", cwd=artifacts)
        report.seconds += time.monotonic() - started
        output = done.stdout + done.stderr
        if verbose:
            print(output, file=sys.stderr)
        report.executions += sum(int(n) for n in re.findall(r"stat::number_of_executed_units: (\d+)", output))
        if done.returncode == 0:
            break
        written = re.findall(r"Test unit written to (\S+)", output)  # also when the same input was found before
        artifact = written[-1] if written else ""
        finding = Finding(signature(output), artifact, output)
        if artifact:
            with open(f"{artifact}.log", "w", encoding="utf-8") as handle:  # beside the input, for triage
                handle.write(f"{finding.signature}\n\n{output[-20000:]}")
        report.findings.append(finding)
        if not keep_going:
            break
        if not artifact:  # died without an input to blame (e.g. did not start): try again a little later
            time.sleep(5)
    return report


def save(report: Report) -> list[str]:
    """Copy each distinct finding of ``report`` to ``tests/fuzz/crashes/<harness>/``; the saved paths."""
    folder = os.path.join(CRASHES, report.harness)
    os.makedirs(folder, exist_ok=True)
    saved = []
    for finding in report.distinct().values():
        if finding.artifact:
            target = os.path.join(folder, os.path.basename(finding.artifact))
            shutil.copyfile(finding.artifact, target)
            saved.append(target)
    return saved


def trace(output: str, lines: int = 12) -> list[str]:
    """The innermost lines of the Python traceback (or hang dump) in libFuzzer's output."""
    found = [line for line in output.splitlines() if line.startswith(("  File", "    ", "Traceback", "Current thread"))
             or re.match(r"[A-Za-z_][\w.]*(Error|Exception|Violation)", line)]
    hang = any(line.startswith("Current thread") for line in found)  # a hang dump lists the innermost frame first
    return found[:lines] if hang else found[-lines:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="fuzzing time in all, split evenly across harnesses")
    parser.add_argument("--harness", action="append", choices=HARNESSES, help="only these (repeatable); default all")
    parser.add_argument("--timeout", type=int, default=5, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=1024, help="memory the fuzzing process may use")
    parser.add_argument("--keep-going", action="store_true", help="restart a harness after a finding until its time is up")
    parser.add_argument("--save", action="store_true", help="copy distinct findings to tests/fuzz/crashes/<harness>/")
    parser.add_argument("--work", help="folder for grown corpora and findings (kept); default a temporary one")
    parser.add_argument("--seed", type=int, help="libFuzzer's random seed, for a repeatable run")
    parser.add_argument("--verbose", action="store_true", help="print libFuzzer's output")
    parser.add_argument("--known", action="append", default=[], metavar="HARNESS=SIGNATURE",
                        help="findings still open: those of HARNESS whose signature starts with SIGNATURE "
                             "(e.g. 'notes_read=hang: timeout'); reported, but not a failure (repeatable)")
    args = parser.parse_args(argv)
    harnesses = args.harness or list(HARNESSES)
    work = args.work or tempfile.mkdtemp(prefix="mgf-fuzz-run-")
    try:
        return 1 if run_all(args, harnesses, work) else 0
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run_all(args: argparse.Namespace, harnesses: list[str], work: str) -> bool:
    """Fuzz each harness in turn (findings and corpora go to ``work``); whether one found something new."""
    share = args.seconds / len(harnesses)
    failed = False
    for harness in harnesses:
        report = fuzz(harness, share, os.path.join(work, "findings", harness), os.path.join(work, "corpus", harness),
                      args.timeout, args.rss_limit_mb, args.keep_going, args.seed, args.verbose)
        distinct = report.distinct()
        counts = {kind: sum(f.kind == kind for f in report.findings) for kind in ("crash", "hang", "memory")}
        print(f"{harness}: {report.executions} executions in {report.seconds:.0f} s; "
              f"{counts['crash']} crashes, {counts['hang']} hangs, {counts['memory']} memory blow-ups "
              f"({len(distinct)} distinct)", flush=True)
        still_open = [prefix for name, _, prefix in (k.partition("=") for k in args.known) if name == harness]
        for finding in distinct.values():
            known = " (known)" if finding.signature.startswith(tuple(still_open)) else ""
            print(f"  {finding.signature}{known}  [{finding.artifact}]", flush=True)
            if args.work is None and not args.save:  # the files go away: show where it happened
                print("    " + "\n    ".join(trace(finding.output)), flush=True)
        if args.save:
            for path in save(report):
                print(f"  saved {path}", flush=True)
        failed = failed or any(not f.signature.startswith(tuple(still_open)) for f in report.findings)
    return failed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that subprocess.run stops the harness it waits for
    sys.exit(main())
