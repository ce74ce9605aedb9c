"""Writing output files whole or not at all, and saying in one line why a file cannot be written.

A writer gets a temporary beside the target (same directory, so the final rename is atomic;
same suffix, so writers that pick a format by suffix still do).  The temporary is removed on
any error, and on SIGTERM/SIGINT once the CLI turns them into exceptions.  A SIGKILL cannot be
cleaned up after, so temporaries are named ``.NAME.mgf-tmp-PID[-N]SUFFIX`` and the next write
into that directory removes those whose process is gone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import InputError

TMP_MARK = ".mgf-tmp-"
_STALE = re.compile(r"\..*" + re.escape(TMP_MARK) + r"(\d+)(?:-\d+)?(?:\..*)?", re.DOTALL)


class OutputError(InputError, OSError):
    """An output file cannot be written.  Also an ``OSError``, so callers that tolerate failed writes keep doing so."""


def check_output(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``path`` could be written: a pre-flight check before expensive work.

    The directory is taken as written (``missing/../x`` fails, as it does for the kernel), the
    target must not be a directory, and the name must fit the file system.  Creates nothing.
    """
    path = os.fspath(path)
    if not path:
        raise OutputError("no output file named (empty path)")
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory")
    if os.path.exists(path) and not os.path.isfile(path):  # a device or a pipe: renaming over it would replace it
        raise OutputError(f"{path}: is not a regular file")
    if not os.path.exists(directory):
        raise OutputError(f"{path}: directory {directory} does not exist")
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: {directory} is not a directory")
    if len(os.fsencode(os.path.basename(path))) > _name_max(directory):
        raise OutputError(f"{path}: the file name is too long ({len(os.path.basename(path))} characters)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: directory {directory} is not writable")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` only on success.

    Every ``OSError`` (a full disk, a read-only directory, ...) becomes one :class:`OutputError`
    naming ``path``; the temporary never outlives the block.
    """
    path = os.fspath(path)
    check_output(path)
    directory = os.path.dirname(path) or "."
    _remove_stale(directory)
    tmp = None
    try:
        tmp = _create_temporary(directory, os.path.basename(path))
        yield tmp
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def _name_max(directory: str) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _create_temporary(directory: str, name: str) -> str:
    """Create ``.NAME.mgf-tmp-PID[-N]SUFFIX`` exclusively, shortening NAME (then SUFFIX) to fit the file system."""
    name_suffix = os.path.splitext(name)[1]
    limit = _name_max(directory)
    count = 0
    while True:
        tag = f"{TMP_MARK}{os.getpid()}" + (f"-{count}" if count else "")
        room = limit - len(os.fsencode(tag)) - 1  # the leading dot
        suffix = os.fsencode(name_suffix)[: max(0, room // 2)]
        head = os.fsencode(name)[: room - len(suffix)]
        candidate = os.path.join(directory, os.fsdecode(b"." + head + os.fsencode(tag) + suffix))
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            return candidate
        except FileExistsError:
            count += 1  # another thread of this process writes the same target


def _remove_stale(directory: str) -> None:
    """Remove the temporaries in ``directory`` whose writing process no longer runs (killed with SIGKILL)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if TMP_MARK not in entry.name:  # the cheap test first: directories of outputs can be large
            continue
        match = _STALE.fullmatch(entry.name)
        if match is None or not _gone(int(match.group(1))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            pass  # another process cleaned it first, or we may not: it costs only space


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: it does not exist, or it is a zombie nobody reaped (it writes no more)."""
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as handle:  # Linux
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def files_under(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """Every file below ``folder`` (recursively) whose name ends with one of ``suffixes``, case-insensitively, sorted."""
    return sorted(
        os.path.join(directory, name)
        for directory, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(suffixes)
    )


def output_beside(path, suffix):
    """``path``'s file name with ``suffix``, in the current directory: the default output of render and plot."""
    return os.path.splitext(os.path.basename(path))[0] + suffix
