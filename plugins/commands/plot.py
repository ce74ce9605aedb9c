"""``mgf plot``: a piano roll (pitch over time, velocity as shade) as a PNG, with matplotlib."""

import os

from mgf import check_output, hookimpl, output_beside, read_notes
from mgf.music import plot


def _plot(args):
    output = args.output or output_beside(args.file, ".png")
    check_output(output)  # before reading the music and importing matplotlib
    plot.plot_notes(read_notes(args.repr, args.file), output, title=os.path.basename(args.file))
    print(output)


@hookimpl
def register_commands(cli):
    p = cli.command("plot", "Draw a piano roll of a MIDI file or score as a PNG.")
    p.add_argument("file", help="music file or corpus: reference")
    p.add_argument("--repr", default="midi", help="representation that reads it (default: midi)")
    p.add_argument("-o", "--output", help="PNG to write (default: the input's name with .png)")
    p.set_defaults(run=_plot)
