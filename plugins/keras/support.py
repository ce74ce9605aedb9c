"""Importing the Keras helpers (``mgf.plugins.keras.net``), shared by the ``keras`` backend and ``mgf train``,
and running TensorFlow work where a signal can stop it.

A helper module, not a plugin; it exists so that importing it costs nothing when TensorFlow is absent.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import time
import traceback

from mgf import InputError, PluginError

INSTALL = "install it with: pip install 'mgf-music[keras]'"
GRACE_SECONDS = 0.5  # what a child stopped by a signal has to remove its temporaries before it is killed


def keras_net():
    """``mgf.plugins.keras.net``, or a PluginError saying how to install TensorFlow."""
    try:
        from mgf.plugins.keras import net as keras_net
    except ImportError as error:
        raise PluginError(f"Keras is not installed ({error}); {INSTALL}") from None
    return keras_net


def require_keras() -> None:
    """The PluginError of :func:`keras_net` when Keras or TensorFlow is missing, without importing them (6.8 s)."""
    for name in ("keras", "tensorflow"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None, or without a spec
            found = False
        if not found:
            raise PluginError(f"Keras is not installed (no module named {name!r}); {INSTALL}")


_channel = None  # in a child of in_child(): the pipe to its parent, for ready()


def ready() -> None:
    """Tell the process waiting in :func:`in_child` that the stage it gave a deadline to is over."""
    if _channel is not None:
        _channel.send(("ready", None))


def in_child(work, *args, ready_within: tuple[float, object] | None = None, **kwargs):
    """``work(*args, **kwargs)`` run in a forked child process: its result, or its exception raised here.

    TensorFlow holds the interpreter's lock while it blocks in C (building a layer of 10^8 weights,
    waiting for the other workers of a cluster), so a signal handler in its process never runs:
    Ctrl-C and SIGTERM went unanswered for minutes.  This process never imports TensorFlow; it
    waits on a pipe, which a signal interrupts at once.  Then the child gets SIGINT, a moment to
    remove its temporaries, and SIGKILL, and the exception goes on (130, or 128 + the signal).
    ``ready_within=(seconds, on_timeout)``: unless the child calls :func:`ready` within ``seconds``,
    it is killed and ``on_timeout()`` raises here.  The work runs in this process where a fork would not
    be safe: without ``os.fork``, or once TensorFlow (whose threads may hold locks) or another thread runs here.
    """
    if not hasattr(os, "fork") or "tensorflow" in sys.modules or threading.active_count() > 1:
        return work(*args, **kwargs)
    import multiprocessing

    receive, send = multiprocessing.Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        receive.close()
        _child(send, work, args, kwargs)
    send.close()
    deadline = None if ready_within is None else time.monotonic() + ready_within[0]
    try:
        while True:
            if not receive.poll(None if deadline is None else max(0.0, deadline - time.monotonic())):
                _end(pid)
                pid = None
                ready_within[1]()
            try:
                kind, value = receive.recv()
            except EOFError:  # it died without a word: killed (the OOM killer), or a crash in C
                _, status = os.waitpid(pid, 0)
                pid = None
                raise InputError(f"the TensorFlow process ended without a result ({_how(status)})") from None
            if kind == "ready":
                deadline = None
                continue
            os.waitpid(pid, 0)
            pid = None
            if kind == "error":
                raise value
            return value
    finally:
        receive.close()
        if pid is not None:
            _end(pid)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}; out of memory?"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _end(pid: int) -> None:
    """SIGINT the child, give it :data:`GRACE_SECONDS` to clean up, then SIGKILL it; reap it."""
    try:
        os.kill(pid, signal.SIGINT)
        until = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < until:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already
        pass


def _child(send, work, args, kwargs) -> None:
    """In the forked child: run ``work``, send ``("ok", result)`` or ``("error", exception)``, and exit."""
    global _channel
    from mgf.training.workers import exit_with_parent

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # exit_with_parent's signal must end it even inside C
    exit_with_parent()
    _channel = send
    try:
        outcome = ("ok", work(*args, **kwargs))
    except BaseException as error:  # noqa: B036 - every outcome, Ctrl-C included, goes back to the parent
        if os.environ.get("MGF_DEBUG") == "1" or "--debug" in sys.argv:
            traceback.print_exc()
        outcome = ("error", error)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            send.send(outcome)
        except Exception:  # an exception that does not pickle (mgf's own all do): its type and message do
            send.send(("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
    finally:
        os._exit(0)
