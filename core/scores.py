"""Scores through music21: files of every format it reads, and ``corpus:`` references.

music21 is imported here only when a score is read, so that generating never loads it.
"""

from __future__ import annotations

import os

from . import corpus
from .errors import InputError

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")


def parse(path):
    """A music21 stream for a file or ``corpus:`` reference; every failure is an InputError naming it."""
    from music21 import converter

    where = str(path)
    if corpus.is_reference(where):
        paths = corpus.resolve(where)
        if len(paths) != 1:
            raise InputError(f"{where}: names {len(paths)} files; read one work at a time (mgf.data reads collections)")
        target = paths[0]
    else:
        target = os.fspath(path)
        if not os.path.exists(target):
            raise InputError(f"{where}: no such file")
        if os.path.isdir(target):
            raise InputError(f"{where}: is a directory")
        if os.path.getsize(target) == 0:
            raise InputError(f"{where}: empty file")
    try:
        if target.lower().endswith((".mid", ".midi")):
            import mido

            mido.MidiFile(target)  # strict: music21 would read a truncated file up to the cut
        # forceSource: music21's own pickle cache matches files by path and mtime, and mgf.data
        # caches by content already; quantizePost=False: MIDI onsets reach our grid unsnapped.
        options = {"quantizePost": False} if target.lower().endswith((".mid", ".midi")) else {}
        return converter.parse(target, forceSource=True, **options), where
    except Exception as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"{where}: not a readable score ({type(error).__name__}{': ' + message if message else ''})") from None
