"""Writing output files whole or not at all, and saying in one line why a file cannot be written.

A writer gets a temporary beside the target (same directory, so the final rename is atomic;
same suffix, so writers that pick a format by suffix still do).  The temporary is removed on
any error, and on SIGTERM/SIGINT once the CLI turns them into exceptions.  A SIGKILL cannot be
cleaned up after, so temporaries are named ``.NAME.mgf-tmp-PID[-N]SUFFIX`` and the next write
into that directory removes those whose writer is gone.  A PID alone cannot tell: in another PID
namespace (a container sharing the folder) or on another host a live writer's PID may not exist
here.  So the writer holds an exclusive ``flock`` on its temporary (file or directory) while it
writes, and a temporary is stale only when nobody holds its lock *and* its PID runs nowhere here.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import shutil
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mgf.errors import InputError

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals that stop a command: a write they interrupt leaves no half-written file (the CLI exits 130 or 128 + it)."""

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
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[str]]:
    """:func:`atomic_path` for files that belong together (a trained model and its bundle): all are renamed
    into place, or none.  A stop signal that arrives during the renames takes effect after the last one."""
    staged: list[tuple[str, str, int]] = []
    current = os.fspath(paths[0]) if paths else ""
    try:
        for given in paths:
            path = current = os.fspath(given)
            check_output(path)
            directory = os.path.dirname(path) or "."
            _remove_stale(directory)
            staged.append((path, *_create_temporary(directory, os.path.basename(path))))
        yield [tmp for _, tmp, _ in staged]
        with _signals_deferred():
            for current, tmp, _ in staged:
                os.replace(tmp, current)
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"{current}: cannot write ({error.strerror or error})") from None
    finally:
        for _, tmp, lock in staged:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.close(lock)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold the :data:`STOP_SIGNALS` for a few renames, then deliver the first that came to its own handler.

    Blocking them with ``pthread_sigmask`` would not do: another thread (TensorFlow's) would take the
    signal and Python would run the handler in the main thread between two renames.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {number: signal.signal(number, lambda number, frame: caught.append(number)) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def synced(handle) -> None:
    """Flush ``handle`` and sync its file to disk: a rename after it never publishes a file whose bytes are not there yet."""
    handle.flush()
    os.fsync(handle.fileno())


def temporary_directory(path: str | os.PathLike) -> tuple[str, int]:
    """A new, empty directory beside ``path`` for the caller to fill and rename to ``path``, and its lock.

    It is named and locked as :func:`atomic_path`'s temporaries are (stale ones beside it are
    removed first).  The caller removes it unless renamed, then closes the descriptor.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    _remove_stale(directory)
    return _create_temporary(directory, os.path.basename(path), folder=True)


@contextmanager
def directory_locked(directory: str | os.PathLike) -> Iterator[None]:
    """``directory`` locked (``flock``) for the block, so that claiming a temporary there and looking for other
    writers are one step: two runs that start at once then do not both see the other and both give up."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def writing_elsewhere(path: str | os.PathLike, own: str) -> bool:
    """Whether another live writer (whose lock is held) has a temporary for ``path`` besides ``own``."""
    path = os.fspath(path)
    directory, head = os.path.dirname(path) or ".", "." + os.path.basename(path) + TMP_MARK
    try:
        names = [n for n in os.listdir(directory) if n.startswith(head) and n != os.path.basename(own)]
    except OSError:
        return False
    for name in names:
        if _STALE.fullmatch(name):
            with _probe(os.path.join(directory, name)) as claimed:
                if claimed:
                    return True
    return False


def _name_max(directory: str) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _create_temporary(directory: str, name: str, folder: bool = False) -> tuple[str, int]:
    """Create ``.NAME.mgf-tmp-PID[-N]SUFFIX`` exclusively (a file, or a directory without SUFFIX), locked.

    NAME (then SUFFIX) is shortened to fit the file system.  Returns the path and the descriptor
    holding its lock: closing it ends the claim.
    """
    name_suffix = "" if folder else os.path.splitext(name)[1]
    limit = _name_max(directory)
    count = 0
    while True:
        tag = f"{TMP_MARK}{os.getpid()}" + (f"-{count}" if count else "")
        room = limit - len(os.fsencode(tag)) - 1  # the leading dot
        suffix = os.fsencode(name_suffix)[: max(0, room // 2)]
        head = os.fsencode(name)[: room - len(suffix)]
        candidate = os.path.join(directory, os.fsdecode(b"." + head + os.fsencode(tag) + suffix))
        try:
            if folder:
                os.mkdir(candidate)
                lock = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                lock = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # umask applies
        except FileExistsError:
            count += 1  # another thread of this process writes the same target
            continue
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_open_as(candidate, lock):
            return candidate, lock
        os.close(lock)  # taken for stale and removed in the instant before the lock: make another


def _is_open_as(path: str, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        here, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _remove_stale(directory: str) -> None:
    """Remove the temporaries (files and directories) in ``directory`` whose writer is gone (killed with SIGKILL)."""
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
        with _probe(entry.path) as claimed:
            if claimed is False:  # removed while this process holds the lock: a writer that locks it meanwhile
                try:              # then finds its path gone and makes another (_create_temporary)
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    elif entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                except OSError:
                    pass  # another process cleaned it first, or we may not: it costs only space


@contextmanager
def _probe(path: str) -> Iterator[bool | None]:
    """Whether a live writer holds the lock of the temporary ``path`` (None: cannot tell); if not, hold it in the block."""
    try:
        probe = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        yield None  # gone, a symbolic link or no permission: not ours to remove
        return
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        claimed = None if not _is_open_as(path, probe) else False
    except BlockingIOError:
        claimed = True
    except OSError:
        claimed = None
    try:
        yield claimed
    finally:
        os.close(probe)


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


class NotRegularFile(InputError, OSError):
    """A path mgf reads back names a FIFO, a device or a directory: reading it could block for ever or never end."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike, mode: str = "rb", **kwargs):
    """``open(path, mode)`` for reading, refusing anything but a regular file with :class:`NotRegularFile`.

    Opening a FIFO blocks until a writer appears, so the file is opened with ``O_NONBLOCK`` (which
    returns at once), checked with ``fstat`` on that very descriptor (no race with a rename), and only
    then switched back to blocking reads.  ``OSError`` (a missing file, no permission) passes through.
    """
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular reads only, not mode {mode!r}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            what = next((name for test, name in _KINDS if test(kind)), "an unusual file")
            raise NotRegularFile(f"{os.fspath(path)}: is {what}, not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return open(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


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
