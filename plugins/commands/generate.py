"""``mgf generate``: load a bundle, sample, write the pieces with the bundle's representation."""

import contextlib
import dataclasses
import os
import signal
import sys
import threading

import numpy as np

import mgf
from mgf import STOP_SIGNALS, UsageError, check_limit, check_output, hookimpl, plugin_class
from mgf.contract import bundle
from mgf.training.workers import dask_client, exit_with_parent, worker_context
from mgf.music import plot
from mgf.music import synth
from mgf.generation.api import representation_of
from mgf.music.scores import primer_source
from mgf.plugins.commands.sampling_options import (add_model_options, add_sampling_options, backend_options, bundle_path,
                                                   check_repr, output_paths, sampling_plan, with_dynamics)


@hookimpl
def register_commands(cli):
    p = cli.command("generate", "Generate music with a model bundle and a sampler.")
    add_model_options(p)
    p.add_argument("--steps", type=int, default=256,
                   help="tokens to generate (default: 256; at most MGF_MAX_STEPS, by default 100,000)")
    p.add_argument("--primer", help="primer: text in the representation's notation, or a file to read")
    p.add_argument("--num-outputs", type=int, default=1,
                   help="pieces to generate, in batches of 64 (default: 1; at most MGF_MAX_OUTPUTS, by default 100,000)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible output")
    p.add_argument("-o", "--output", help="output file; its suffix picks the format (default: generated.<suffix>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.add_argument("--render", action="store_true", help="also write each piece as a WAV file beside it")
    p.add_argument("--plot", action="store_true", help="also draw each piece's piano roll as a PNG beside it")
    p.add_argument("--dynamics", help="midi: velocities as written: accents (metric accents and phrase swells) or none "
                                      "(the model's own); default: the bundle's (the shipped midi model's: accents)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes generating batches of outputs in parallel, each loading the model once (default: 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="generate the batches on this Dask cluster (pip install 'mgf-music[distributed]'); its workers must "
                        "see the bundle and the output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="with --num-outputs, regenerate outputs that exist (default: keep them, so a killed run "
                        "can be re-run to write only the missing ones)")
    add_sampling_options(p, "generate")
    p.set_defaults(run=_generate)


#: outputs generated as one batch; more are generated batch after batch and written as they come
BATCH = 64

def _generate(args) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.num_outputs < 1:
        raise UsageError(f"--num-outputs must be at least 1, got {args.num_outputs}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    check_limit("steps", args.steps)
    check_limit("outputs", args.num_outputs)
    backend = plugin_class("models", args.model)
    path = bundle_path(args)
    parallel = args.scheduler is not None or args.workers > 1  # the workers load the model; this process need not
    loaded = bundle.read(path, weights=not parallel) if backend.reads_bundles else None  # the one read of the file
    if loaded is not None:
        check_repr(args, loaded.representation["name"])  # before the backend builds anything
    described = None if loaded is None else representation_of(path, loaded)  # what the controls typed are checked against
    job = _checked_job(args, backend, path, {} if loaded is None or args.no_defaults else loaded.defaults, described)
    job.dynamics = args.dynamics
    model = None if parallel and loaded is not None else job.model(loaded)
    representation = job.representation(loaded) if model is None else model.representation
    if loaded is None:
        check_repr(args, representation.name)  # a file format of the backend's own: only its model knows
    paths = output_paths(args.output or f"generated{representation.suffix}", args.num_outputs)
    if args.output is None:
        _check_outputs(paths, args)
    if args.primer is not None:  # told from text here, once: a file the representation reads, else text to parse
        primer_path, text = primer_source(args.primer, representation.read_suffixes)
        primer = representation.read(primer_path) if primer_path is not None else representation.parse_primer(text)
        job.plan = job.plan.primed(primer, representation)
    batches = [(first, paths[first:first + BATCH]) for first in range(0, len(paths), BATCH)]
    if len(paths) > 1 and not args.overwrite:  # a collection: what a killed run already wrote stays
        batches = [(first, chunk) for first, chunk in batches if not all(os.path.exists(p) for p in chunk)]
        kept = sum(os.path.exists(p) for p in paths)
        if kept:
            print(f"mgf: kept {kept} existing output(s); --overwrite regenerates them", file=sys.stderr)
    if args.scheduler is not None:
        _on_dask(job, batches, args.scheduler, args.overwrite)
        return 0
    if args.workers == 1 or len(batches) < 2:
        model = model or job.model()
        for first, chunk in batches:
            job.write(model, first, chunk, args.overwrite or len(paths) == 1, listed=_list)
        return 0
    _in_processes(job, batches, args.workers, args.overwrite)
    return 0


def _checked_job(args, backend, path: str, defaults: dict, representation=None) -> "Job":
    """The job of ``args``, its plan made here once (every option value, the bundle's defaults too, checked), and every
    output path checked; the primer joins the plan once the representation has read it."""
    settings = sampling_plan(args, backend, defaults, args.steps, min(BATCH, args.num_outputs), representation)
    if args.output is not None:
        _check_outputs(output_paths(args.output, args.num_outputs), args)
    return Job(path, args.model, backend_options(args, backend), settings, args.quiet, args.render, args.plot)


class Job:
    """Everything a process needs to generate and write batches of one run: plain data, so that it travels to workers.

    ``plan`` (:class:`mgf.generation.plan.Plan`) is checked once, in the process that makes the job: a worker runs it
    as it is, with each batch's seed and size."""

    def __init__(self, bundle, backend, backend_options, plan, quiet, render, plot):
        self.bundle, self.backend, self.backend_options, self.plan = bundle, backend, backend_options, plan
        self.quiet, self.render, self.plot = quiet, render, plot
        self.dynamics = None

    def model(self, loaded=None):
        """The model, from the bundle ``loaded`` if this process has read it, else from the file."""
        model = mgf.load_model(self.bundle if loaded is None else loaded, backend=self.backend, **self.backend_options)
        if self.dynamics is not None:
            model.representation = with_dynamics(model.representation, self.dynamics)
        return model

    def representation(self, described):
        """The representation :meth:`model` sets, from the bundle read without its weights (``described``): what
        the process that hands batches to workers parses the primer and names the outputs with."""
        representation = representation_of(self.bundle, described)
        return representation if self.dynamics is None else with_dynamics(representation, self.dynamics)

    def write(self, model, first: int, paths: list[str], overwrite: bool, listed=None) -> list[str]:
        """Generate the batch of outputs ``first, first + 1, ...`` and write those of ``paths`` not there yet.

        ``listed(path)``, if given, is called as each file is written, and a stop signal waits
        for it: a run stopped by Ctrl-C has listed exactly the files it wrote.

        A batch's randomness depends only on the seed and the batch's place, so a run that is
        interrupted and restarted writes the missing files exactly as the first run would have.
        """
        seed = self.plan.seed
        seed = seed if seed is None or first == 0 else np.random.SeedSequence([seed, first // BATCH])
        batch = dataclasses.replace(self.plan, seed=seed, num_outputs=len(paths))  # at most the size the plan checked
        pieces = mgf.generate(model, plan=batch, progress=False if self.quiet else None)
        written = []
        for path, tokens in zip(paths, pieces):
            if overwrite or not os.path.exists(path):
                written.extend(_write(model.representation, tokens, path, self, listed))
        return written


_worker_state: dict = {}


def _worker_start(job: Job) -> None:
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the workers too: the parent stops them
    _worker_state["job"], _worker_state["model"] = job, job.model()


def _worker_batch(first: int, paths: list[str], overwrite: bool) -> list[str]:
    return _worker_state["job"].write(_worker_state["model"], first, paths, overwrite, listed=_list)


def _dask_batch(job: Job, first: int, paths: list[str], overwrite: bool) -> list[str]:
    """A batch on a Dask worker, which loads each bundle once (the model stays in the worker process)."""
    key = (job.bundle, job.backend, tuple(sorted(job.backend_options.items())))
    if _worker_state.get("key") != key:
        _worker_state["key"], _worker_state["model"] = key, job.model()
    return job.write(_worker_state["model"], first, paths, overwrite)


def _on_dask(job: Job, batches, scheduler: str, overwrite: bool) -> None:
    """Batches on the Dask cluster at ``scheduler``; its workers must see the bundle and the output folder."""
    from dask.distributed import as_completed

    job.quiet = True
    client = dask_client(scheduler)
    try:
        futures = [client.submit(_dask_batch, job, first, chunk, overwrite, pure=False) for first, chunk in batches]
        for future in as_completed(futures):
            try:
                written = future.result()
            except mgf.MgfError:
                raise
            except Exception as error:
                raise mgf.PluginError(f"a generation worker failed: {type(error).__name__}: {error}") from None
            for path in written:
                print(path, flush=True)
    finally:
        client.close()


def _in_processes(job: Job, batches, workers: int, overwrite: bool) -> None:
    """Batches over ``workers`` processes, each loading the bundle once and listing each file as it writes it.

    On an error or a stop signal the workers are ended at once (SIGTERM, which waits for the file
    being written to be listed), so that nothing is written after the run has stopped."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    job.quiet = True  # one bar per process would interleave
    context = worker_context("spawn")  # no fork of a process holding threads (BLAS, OpenMP)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(job,))
    try:
        with _ctrl_c_held():  # the workers, which submit starts, inherit it: they import for a while before ignoring it
            pending = {pool.submit(_worker_batch, first, chunk, overwrite) for first, chunk in batches}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    raise error if isinstance(error, mgf.MgfError) else mgf.PluginError(
                        f"a generation worker failed: {type(error).__name__}: {error}")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        workers = multiprocessing.active_children()  # the pool's: the only processes this command starts
        for process in workers:
            process.terminate()
        for process in workers:
            process.join()
        raise
    pool.shutdown()


def _check_outputs(paths: list[str], args) -> None:
    """Every file this run would write can be written: checked before any work, so a bad -o costs nothing."""
    for path in paths:
        check_output(path)
        stem = os.path.splitext(path)[0]
        if args.render:
            check_output(stem + ".wav")
        if args.plot:
            check_output(stem + ".png")


def _write(representation, tokens, path, job, listed=None) -> list[str]:
    """One piece, and its WAV and piano roll if asked; each passed to ``listed`` once written (and returned)."""
    notes = representation.to_notes(tokens) if job.render or job.plot else None  # fail before writing anything
    stem = os.path.splitext(path)[0]
    writers = [(path, lambda target: representation.write(tokens, target))]
    if job.render:
        writers.append((stem + ".wav", lambda target: synth.render_notes(notes, target)))
    if job.plot:
        writers.append((stem + ".png", lambda target: plot.plot_notes(notes, target, title=os.path.basename(path))))
    for target, write in writers:
        with _whole() if listed else contextlib.nullcontext():
            write(target)
            if listed:
                listed(target)
    return [target for target, _ in writers]


@contextlib.contextmanager
def _whole():
    """A stop signal (Ctrl-C, SIGTERM) waits until the file being written is written and listed, then acts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in STOP_SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    for signum in caught[:1]:
        signal.raise_signal(signum)


@contextlib.contextmanager
def _ctrl_c_held():
    """SIGINT blocked in this thread (where the OS has the call): it reaches another thread or waits until the end."""
    hold = getattr(signal, "pthread_sigmask", lambda how, mask: None)
    hold(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        hold(signal.SIG_UNBLOCK, {signal.SIGINT})


def _list(path: str) -> None:
    """Print a written output's path, in the command or in a worker; a reader that left (``| head``) ends the
    listing, not the work.  One write per line, which a pipe keeps whole when workers list at once."""
    try:
        sys.stdout.write(f"{path}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
