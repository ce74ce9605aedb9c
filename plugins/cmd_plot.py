"""``mgf plot``: a piano roll (pitch over time, velocity as shade) as a PNG, with matplotlib."""

import os

from mgf import InputError, atomic_path, check_output, hookimpl


def plot_notes(notes, path, title=""):
    """Write a piano roll of ``[(pitch, velocity, start, end)]`` to ``path`` (.png)."""
    if not str(path).lower().endswith(".png"):
        raise InputError(f"{path}: piano rolls are written as .png")
    if not notes:
        raise InputError(f"{path}: no notes to plot")
    try:
        import matplotlib
    except ImportError:
        raise InputError("mgf plot needs matplotlib: pip install 'mgf[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4), dpi=100)
    axes = figure.add_subplot()
    colours = pyplot.get_cmap("viridis")
    for pitch, velocity, start, end in notes:
        axes.broken_barh([(start, max(end - start, 0.01))], (pitch - 0.4, 0.8), color=colours(velocity / 127))
    pitches = [p for p, *_ in notes]
    axes.set_ylim(min(pitches) - 2, max(pitches) + 2)
    axes.set_xlim(0, max(end for *_, end in notes))
    axes.set_xlabel("seconds")
    axes.set_ylabel("MIDI pitch")
    axes.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _plot(args):
    from .cmd_render import output_beside, read_notes

    output = args.output or output_beside(args.file, ".png")
    check_output(output)  # before reading the music and importing matplotlib
    plot_notes(read_notes(args.repr, args.file), output, title=os.path.basename(args.file))
    print(output)


@hookimpl
def register_commands(cli):
    p = cli.command("plot", "Draw a piano roll of a MIDI file or score as a PNG.")
    p.add_argument("file", help="music file or corpus: reference")
    p.add_argument("--repr", default="midi", help="representation that reads it (default: midi)")
    p.add_argument("-o", "--output", help="PNG to write (default: the input's name with .png)")
    p.set_defaults(run=_plot)
