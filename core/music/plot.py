"""Piano rolls: notes ``[(pitch, velocity, start, end)]`` drawn as a PNG with matplotlib (``mgf-music[plot]``)."""

from __future__ import annotations

import numpy as np

from mgf.errors import InputError
from mgf.files import atomic_path


def plot_notes(notes, path, title=""):
    """Write a piano roll of ``[(pitch, velocity, start, end)]`` to ``path`` (.png)."""
    if not str(path).lower().endswith(".png"):
        raise InputError(f"{path}: piano rolls are written as .png")
    figure = piano_roll(notes, title, label=path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def piano_roll(notes, title="", label="piano roll"):
    """The matplotlib Figure of a piano roll: every note a rectangle of one PolyCollection.

    One artist for all notes, not one per note: a 100,000-step piece (42,000 notes) draws in
    seconds instead of minutes (per-note artists made drawing quadratic).
    """
    if not notes:
        raise InputError(f"{label}: no notes to plot")
    try:
        import matplotlib
    except ImportError:
        raise InputError("piano rolls need matplotlib: pip install 'mgf-music[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    pitch, velocity, start, end = np.asarray(notes, dtype=np.float64).T
    end = start + np.maximum(end - start, 0.01)
    corners = np.stack([np.stack([start, pitch - 0.4], -1), np.stack([end, pitch - 0.4], -1),
                        np.stack([end, pitch + 0.4], -1), np.stack([start, pitch + 0.4], -1)], axis=1)
    figure = Figure(figsize=(12, 4), dpi=100)
    axes = figure.add_subplot()
    axes.add_collection(PolyCollection(corners, facecolors=colormaps["viridis"](velocity / 127), edgecolors="none"))
    axes.set_ylim(pitch.min() - 2, pitch.max() + 2)
    axes.set_xlim(0, end.max())
    axes.set_xlabel("seconds")
    axes.set_ylabel("MIDI pitch")
    axes.set_title(title)
    figure.tight_layout()
    return figure
