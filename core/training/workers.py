"""The processes that share the work: a pool of local workers or a Dask cluster, and what keeps them tidy.

Workers are started from a clean process (forkserver, else spawn), end when the run that started them dies,
and are ended at once when it is stopped (a signal, an error), so that a killed or interrupted run leaves no
worker behind.  A Dask scheduler is checked before Dask meets it, so that a wrong address is one line, not a hang.
"""

from __future__ import annotations

import os
import sys

from mgf.errors import InputError, UsageError

SCHEDULER_TIMEOUT = 10  # seconds for a Dask scheduler to answer, unless MGF_SCHEDULER_TIMEOUT says otherwise


def local_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def exit_with_parent() -> None:
    """In a worker process: have it end (SIGTERM) when the process that started it dies.

    A pool's workers wait for work for ever; when ``mgf generate --workers N`` or ``mgf dataset``
    is killed (SIGKILL, an OOM kill), nothing tells them, and they stayed, each holding what it
    had loaded.  A worker ends at once, as its parent did (unwinding would hang on the pool's
    pipes, which nobody reads any more); a file it was writing is a temporary that the next write
    into that folder removes.  Linux only (prctl PR_SET_PDEATHSIG); elsewhere nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_context(method: str):
    """``multiprocessing``'s context ``method`` for a pool of workers, its resource tracker started quietly.

    A pool's queues hold named semaphores.  When the run is killed (SIGKILL, an OOM kill),
    multiprocessing's resource tracker, a process of its own, unlinks them once the workers have
    ended, as it is meant to, but says "There appear to be 5 leaked semaphore objects" on the
    run's stderr although nothing is left behind.  The tracker takes its warning filters from
    ``sys.warnoptions`` when it starts, so it is started here with its own warnings ignored.
    """
    import multiprocessing
    from multiprocessing import resource_tracker

    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)
    return multiprocessing.get_context(method)


class _pool:
    """``(submit, slots)`` of local worker processes or of a Dask cluster, shut down on exit.

    ``preload`` names the module whose functions the workers run: the fork server imports it once,
    not each worker.
    """

    def __init__(self, workers: int, scheduler: str | None, preload: str) -> None:
        self.workers, self.scheduler, self.preload = workers, scheduler, preload

    def __enter__(self):
        if self.scheduler is not None:
            self.client = dask_client(self.scheduler)
            slots = max(1, sum(self.client.nthreads().values()))
            return lambda function, *args: self.client.submit(function, *args, pure=False), slots
        import concurrent.futures
        import multiprocessing

        # forkserver (spawn where there is none): workers start from a clean process, never a fork of one
        # whose threads (TensorFlow's, a BLAS pool's) may hold locks that the child would inherit locked
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = worker_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([self.preload])
        self.client = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context,
                                                             initializer=exit_with_parent)
        return self.client.submit, self.workers

    def __exit__(self, *exc):
        if self.scheduler is not None:
            self.client.close()
            return
        if exc[0] is not None:  # a signal or an error: end the workers' chunks now, not when they are done (seconds)
            for process in list((getattr(self.client, "_processes", None) or {}).values()):  # Python < 3.14 has
                process.terminate()                                             # no terminate_workers()
        self.client.shutdown(wait=exc[0] is None, cancel_futures=True)


def scheduler_timeout() -> float:
    """Seconds a Dask scheduler has to answer: ``MGF_SCHEDULER_TIMEOUT`` if set (a slow network, or a test that
    should not wait 10 s for a peer that never answers), else :data:`SCHEDULER_TIMEOUT`."""
    text = os.environ.get("MGF_SCHEDULER_TIMEOUT")
    if text is None:
        return SCHEDULER_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:
        raise UsageError(f"MGF_SCHEDULER_TIMEOUT must be a number of seconds in (0, 3600], got {text[:40]!r}")
    return seconds


def dask_client(scheduler: str):
    """A Dask client of the cluster at ``scheduler``; one-line errors when the extra or the cluster is missing."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'mgf-music[distributed]'") from None
    check_scheduler(scheduler)
    try:
        return Client(scheduler, timeout=scheduler_timeout())
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({error})") from None


def check_scheduler(scheduler: str) -> None:
    """Refuse, in one line, a ``tcp://`` peer that does not answer like a Dask scheduler within the timeout.

    Checked before Dask meets it: Dask's own timeout covers the connection, not the handshake, so a peer
    that accepts and never answers hung every command for ever, and an HTTP server's reply, read as the
    length of a message, asked for 3 EiB.  A scheduler speaks first: one length-prefixed message
    (little-endian 64-bit total length).
    """
    import socket
    import struct

    scheme, _, address = scheduler.rpartition("://")
    host, _, port = address.rpartition(":")
    timeout = scheduler_timeout()
    if scheme not in ("", "tcp") or not port.isdigit():
        return  # tls://, ucx://...: left to Dask
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as peer:
            peer.settimeout(timeout)
            head = b""
            while len(head) < 8:
                received = peer.recv(8 - len(head))
                if not received:
                    raise InputError(f"--scheduler {scheduler}: the peer closed the connection; is it a Dask scheduler?")
                head += received
    except InputError:
        raise
    except TimeoutError:
        raise InputError(f"--scheduler {scheduler}: no answer within {timeout:g} s; is it a Dask scheduler?") from None
    except (OSError, ValueError) as error:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({error})") from None
    if struct.unpack("<Q", head)[0] > 1 << 26:
        raise InputError(f"--scheduler {scheduler}: not a Dask scheduler (it answered {head!r})")
