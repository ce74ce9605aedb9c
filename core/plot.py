"""Piano rolls: notes ``[(pitch, velocity, start, end)]`` drawn as a PNG with matplotlib (``mgf-music[plot]``)."""

from __future__ import annotations

from .errors import InputError
from .files import atomic_path


def plot_notes(notes, path, title=""):
    """Write a piano roll of ``[(pitch, velocity, start, end)]`` to ``path`` (.png)."""
    if not str(path).lower().endswith(".png"):
        raise InputError(f"{path}: piano rolls are written as .png")
    if not notes:
        raise InputError(f"{path}: no notes to plot")
    try:
        import matplotlib
    except ImportError:
        raise InputError("piano rolls need matplotlib: pip install 'mgf-music[plot]'") from None
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
