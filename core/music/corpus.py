"""``corpus:`` references into the corpus that ships inside music21's PyPI package (works offline).

``corpus:bach`` names a collection (a folder of the corpus: every readable score in it),
``corpus:bach/bwv66.6`` or ``corpus:essenFolksong/altdeu10.abc`` one work.
"""

from __future__ import annotations

import os

from mgf.errors import InputError
from mgf.files import files_under

PREFIX = "corpus:"
#: file kinds in the corpus that hold music (``.rntxt`` is Roman-numeral analysis, not notes)
MUSIC_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")


def is_reference(text) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def root() -> str:
    """The corpus folder of the installed music21."""
    import music21

    return os.path.join(os.path.dirname(music21.__file__), "corpus")


def resolve(reference: str) -> list[str]:
    """Paths of the music files a ``corpus:`` reference names, sorted; ``InputError`` if it names none."""
    name = reference[len(PREFIX):] if is_reference(reference) else reference
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts or ":" in name:
        raise InputError(f"{reference!r}: name a folder or work inside music21's corpus, without '..' or absolute paths")
    name = name.strip("/")
    if not name:
        raise InputError(f"{reference!r}: name a corpus folder or work, e.g. corpus:bach or corpus:bach/bwv66.6")
    base = root()
    folder = os.path.join(base, name)
    if os.path.isdir(folder):
        paths = files_under(folder, MUSIC_SUFFIXES)
        if paths:
            return paths
    if os.path.isfile(folder) and folder.lower().endswith(MUSIC_SUFFIXES):
        return [folder]
    from music21 import corpus

    try:
        found = corpus.getWork(name)
    except Exception:
        found = None
    found = found if isinstance(found, list) else [found] if found else []
    # getWork matches fragments ('ucc' finds essenFolksong/zuccal0.abc, a file of 50 tunes): keep the works
    # whose path ends with the name, as in corpus:bwv66.6 or corpus:bach/bwv66.6
    paths = sorted(str(p) for p in found if str(p).lower().endswith(MUSIC_SUFFIXES)
                   and ("/" + os.path.splitext(os.path.relpath(str(p), base))[0].replace(os.sep, "/")).endswith("/" + name))
    if not paths:
        raise InputError(f"{reference!r}: no such work or collection in music21's corpus")
    return paths
