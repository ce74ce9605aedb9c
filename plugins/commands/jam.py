"""``mgf jam``: play with a model live, over OSC or MIDI ports (``pip install 'mgf-music[live]'``).

The engine is :mod:`mgf.plugins.commands.jam_engine`, the inputs and outputs :mod:`mgf.plugins.commands.jam_io`.
"""

import os
import sys
import tempfile
import threading

import mgf
from mgf import UsageError, hookimpl

#: where each call's MIDI file is written and read: in memory where there is such a folder (it is read at every call)
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _list(args):
    from mgf.plugins.commands import jam_io

    inputs, outputs = jam_io.port_names()
    for direction, names in (("input", inputs), ("output", outputs)):
        for name in names:
            print(f"{direction}\t{name}")


def _bundle(args) -> str:
    if args.bundle is not None:
        return args.bundle
    bundle = mgf.plugin_class("representations", args.repr).default_bundle
    if not bundle:
        raise UsageError(f"representation {args.repr!r} ships no default model; give --bundle")
    return bundle


def _ends(args):
    """The input and the output the arguments name: MIDI ports if any is named, else OSC."""
    from mgf.plugins.commands import jam_io

    if args.handover_cc is not None and not 0 <= args.handover_cc <= 127:
        raise UsageError(f"--handover-cc must be a controller number in 0..127, got {args.handover_cc}")
    if args.virtual and (args.inp or args.out):
        raise UsageError("--virtual creates the ports: give it, or --in/--out, not both")
    opened = []
    try:
        if args.virtual or args.inp:
            port = jam_io.open_port("input", f"{args.virtual} in" if args.virtual else args.inp, bool(args.virtual))
            opened.append(jam_io.PortIn(port, args.handover_cc))
        else:
            opened.append(jam_io.OscIn(*jam_io.address(args.osc_in, "--osc-in")))
        if args.virtual or args.out:
            port = jam_io.open_port("output", f"{args.virtual} out" if args.virtual else args.out, bool(args.virtual))
            opened.append(jam_io.PortOut(port))
        else:
            opened.append(jam_io.OscOut(*jam_io.address(args.osc_out, "--osc-out")))
    except BaseException:
        for end in opened:
            end.close()
        raise
    return opened


def _where(end) -> str:
    where = getattr(end, "address", None)  # an OscIn's
    return "the MIDI input" if where is None else f"OSC on {where[0]}:{where[1]}"


def _report(jam, source) -> str:
    """The session in one line: what was answered and dropped, the compute latency and the jitter."""
    import statistics

    parts = [f"{count} {what}" for what, count in sorted((jam.counts + source.counts).items())]
    if jam.scheduler.failed:
        parts.append(f"{jam.scheduler.failed} events not sent")
    for name, values in (("compute", jam.compute), ("jitter", jam.scheduler.lateness)):
        if len(values) >= 2:
            cuts = statistics.quantiles(values, n=100)
            parts.append(f"{name} p50 {cuts[49] * 1e3:.2f} ms p99 {cuts[98] * 1e3:.2f} ms")
    return "mgf: jam: " + (", ".join(parts) or "nothing played")


def _jam(args):
    if args.list:
        return _list(args)
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    from mgf.plugins.commands import jam_engine  # here, as jam_io: every `mgf` command line imports this module

    model = mgf.load_model(_bundle(args), backend=args.model)
    source, output = _ends(args)
    scheduler = jam_engine.Scheduler(output.send)
    try:
        with tempfile.TemporaryDirectory(prefix="mgf-jam-", dir=SCRATCH) as folder:
            jam = jam_engine.Jam(model, scheduler, folder, mode=args.mode, qpm=args.qpm, pause_beats=args.pause_beats,
                                 window_beats=args.window_beats, sampler=args.sampler, seed=args.seed)
            try:  # from the line that says it listens, Ctrl-C gets the report
                print(f"mgf: jam: {args.mode} at {args.qpm:g} qpm, listening to {_where(source)} (Ctrl-C stops)",
                      file=sys.stderr, flush=True)
                jam_engine.run(jam, source, threading.Event(), args.seconds)
            finally:
                jam.close()
                print(_report(jam, source), file=sys.stderr, flush=True)
    finally:
        scheduler.close()
        source.close()
        output.close()


@hookimpl
def register_commands(cli):
    p = cli.command("jam", "Play with a model live: it answers or accompanies what you play, over OSC or MIDI ports "
                           "(pip install 'mgf-music[live]').")
    p.add_argument("--repr", default="notes", help="representation whose shipped model plays (default: notes)")
    p.add_argument("--bundle", help="model bundle (.safetensors; default: the representation's shipped model)")
    p.add_argument("--model", default="native", help="model backend (default: native)")
    p.add_argument("--sampler", help="sampler (default: the bundle's)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--mode", default="call-response",
                   help="call-response: answer each call after a pause, as long as the call; accompany: play along, "
                        "a window at a time (default: call-response)")
    p.add_argument("--qpm", type=float, default=120.0, help="tempo, in quarter notes per minute (default: 120)")
    p.add_argument("--pause-beats", type=float, default=1.0,
                   help="call-response: beats of silence that end a call (default: 1)")
    p.add_argument("--window-beats", type=float, default=1.0,
                   help="accompany: beats the model plays at a time, having heard the player's last ones (default: 1)")
    p.add_argument("--handover-cc", type=int, metavar="N",
                   help="MIDI control change N (value >= 64) hands over, as OSC /handover does: call-response: answer "
                        "now; accompany: mute or unmute the model")
    p.add_argument("--osc-in", default="127.0.0.1:9000", metavar="HOST:PORT",
                   help="listen for OSC /note_on PITCH VELOCITY, /note_off PITCH, /handover (default: 127.0.0.1:9000)")
    p.add_argument("--osc-out", default="127.0.0.1:9001", metavar="HOST:PORT",
                   help="send the model's /note_on PITCH VELOCITY and /note_off PITCH here (default: 127.0.0.1:9001)")
    p.add_argument("--in", dest="inp", metavar="NAME", help="read this MIDI input port instead of OSC")
    p.add_argument("--out", metavar="NAME", help="play to this MIDI output port instead of OSC")
    p.add_argument("--virtual", metavar="NAME",
                   help="create MIDI ports 'NAME in' and 'NAME out' for a DAW or aconnect to connect to")
    p.add_argument("--list", action="store_true", help="list the MIDI ports and exit")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: at Ctrl-C)")
    p.set_defaults(run=_jam)
