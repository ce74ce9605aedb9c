"""Shared fixtures: random bundles on disk, in-process plugin registration, a Markov-chain model; and the sandbox.

The whole session runs in a private folder (see :func:`pytest_configure`), so that the suite
never writes into the user's cache or home, nor leaves files in the temporary directory.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest

from mgf import Model, State
from mgf.contract import bundle
from mgf.contract import registry

#: what points a program at the user's files; each is set into the sandbox (MGF_CACHE_DIR is
#: unset instead, so that the default cache folder, found by platformdirs, is the one tested)
SANDBOXED = {"HOME": "home", "XDG_CACHE_HOME": "home/.cache", "XDG_CONFIG_HOME": "home/.config",
             "XDG_DATA_HOME": "home/.local/share", "XDG_STATE_HOME": "home/.local/state",
             "LOCALAPPDATA": "home/AppData/Local", "APPDATA": "home/AppData/Roaming", "USERPROFILE": "home",
             "TMPDIR": "tmp", "TEMP": "tmp", "TMP": "tmp",
             "HYPOTHESIS_STORAGE_DIRECTORY": "home/.hypothesis"}  # else .hypothesis/ in the working directory
_SAVED = pytest.StashKey[dict]()


def pytest_configure(config):
    """Point HOME, the XDG folders, the cache and the temporary directory into one private folder, for
    this process and every process it starts (they inherit the environment), and remove it at exit.

    Set before the tests are collected, so that nothing computes a path from the real ones first;
    pytest's own ``tmp_path`` folders are made in it too.  Removed at interpreter exit, after
    multiprocessing has removed its own temporary folders in it (atexit runs handlers last in,
    first out, and multiprocessing is imported later than this).  ``--basetemp`` keeps the
    ``tmp_path`` folders of a run elsewhere, for a look at them.
    """
    sandbox = tempfile.mkdtemp(prefix="mgf-tests-")
    config.stash[_SAVED] = {name: os.environ.get(name) for name in [*SANDBOXED, "MGF_CACHE_DIR"]}
    for name, folder in SANDBOXED.items():
        os.environ[name] = os.path.join(sandbox, folder)
    os.environ.pop("MGF_CACHE_DIR", None)
    os.makedirs(os.environ["HOME"])
    os.makedirs(os.environ["TMPDIR"])
    tempfile.tempdir = os.environ["TMPDIR"]  # gettempdir() may have read the real one already
    if getattr(config.option, "benchmark_storage", None) == "file://./.benchmarks":  # pytest-benchmark's default,
        config.option.benchmark_storage = f"file://{sandbox}/benchmarks"  # made at start in the working directory
    atexit.register(shutil.rmtree, sandbox, True)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # `timeout` stopping a hung run: end it as Ctrl-C does,
        signal.signal(signal.SIGTERM, _interrupt)  # so that the exit handlers run and remove the sandbox


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_unconfigure(config):
    """The caller's environment back, for a session run in-process (``pytest.main``)."""
    for name, value in config.stash.get(_SAVED, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None
    if signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip in a test module that lists its tests that cannot apply (``NOT_APPLICABLE``: class name -> test
    names) fails unless listed there, or a missing extra's (importorskip): the ``mgf.testing`` suites skip what
    a plugin does not implement, so a built-in that stopped transposing, say, would pass as a skip."""
    report = yield
    listed = getattr(item.module, "NOT_APPLICABLE", None)
    if listed is not None and report.skipped and call.when == "call" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        cls = item.cls.__name__ if item.cls else ""
        if item.originalname not in listed.get(cls, ()) and "could not import" not in reason:
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid} skipped ({reason}), and {cls or 'its module'} lists no such NOT_APPLICABLE test"
    return report


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """``MGF_CACHE_DIR`` in the test's own folder: one test's encoding cache, which no other test sees."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MGF_CACHE_DIR", str(path))
    return path


@pytest.fixture
def make_bundle(tmp_path):
    """Write a random bundle and return its path: make_bundle(vocab, hidden, embedding=None, seed=0)."""

    def make(vocab_size=20, hidden=(16,), embedding_dim=None, seed=0, scale=1.0, name="model"):
        path = tmp_path / f"{name}-{seed}.safetensors"
        bundle.write(bundle.random_bundle(vocab_size, hidden, embedding_dim, seed=seed, scale=scale), path)
        return path

    return make


@pytest.fixture
def register_plugin():
    """Register plugin objects in-process for one test, then remove them."""
    added = []

    def register(plugin, name):
        registry.pm.register(plugin, name=name)
        registry.reset()
        added.append(plugin)

    yield register
    for plugin in added:
        registry.pm.unregister(plugin)
    registry.reset()


class MarkovState(State):
    def __init__(self, last):
        self.last = last

    @property
    def batch_size(self):
        return len(self.last)

    def take(self, indices):
        return MarkovState(self.last[np.asarray(indices)].copy())


class MarkovModel(Model):
    """A first-order Markov chain: next-token log-probabilities depend on the last token only."""

    def __init__(self, transitions):
        self.log_p = np.log(np.asarray(transitions, dtype=np.float64)).astype(np.float32)

    @property
    def vocab_size(self):
        return self.log_p.shape[0]

    def initial_state(self, batch_size):
        return MarkovState(np.zeros(batch_size, np.int64))

    def step(self, tokens, state):
        tokens = np.asarray(tokens)
        return self.log_p[tokens].copy(), MarkovState(tokens.copy())


@pytest.fixture
def markov():
    """Build a MarkovModel from a transition matrix; it reads and writes ``tokens`` (start token: the last id)."""

    def make(transitions):
        import mgf

        model = MarkovModel(transitions)
        model.representation = mgf.get_representation("tokens", vocab_size=model.vocab_size)
        return model

    return make


@pytest.fixture
def counting_tokens():
    """A ``tokens`` representation class that counts the files it parses (``.reads``): what a cache saves."""
    from mgf.plugins.representations.tokens import Tokens

    class CountingTokens(Tokens):
        reads = 0

        def read(self, path):
            CountingTokens.reads += 1
            return super().read(path)

    return CountingTokens


def write_progressions(folder):
    """Rising arithmetic progressions mod 40 (40 pieces of 60 tokens), as `tokens` files in ``folder``."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(40):
        start, step = rng.integers(0, 40), rng.integers(1, 4)
        (folder / f"p{i}.txt").write_text(" ".join(str((start + step * j) % 40) for j in range(60)))
    return folder


@pytest.fixture
def progressions(tmp_path):
    """A learnable data set: rising arithmetic progressions mod 40, as `tokens` files."""
    return write_progressions(tmp_path / "data")


#: ``mgf train`` arguments of the session's trained run (:func:`trained`), output aside
TRAIN_ARGS = ["train", "--repr", "tokens", "--config", "vocab_size=41", "--hidden", "8", "--layers", "1", "--seq-len", "30",
              "--lr", "0.01", "--val-split", "0.2", "--patience", "9"]


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory):
    """One `mgf train` run for the whole session (TensorFlow takes seconds to start in each): 2 epochs, --quiet, on
    :func:`progressions`; the folder with m.safetensors, m.keras, two checkpoints and their sidecar.  Tests read
    it through :func:`trained`, which copies it."""
    pytest.importorskip("keras")
    root = tmp_path_factory.mktemp("trained")
    data, out = write_progressions(root / "data"), root / "out"
    out.mkdir()
    args = [*TRAIN_ARGS, "--data", str(data)]
    run = subprocess.run([sys.executable, "-m", "mgf.cli.main", *args, "--quiet", "--epochs", "2", "-o", str(out / "m.safetensors")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "MGF_CACHE_DIR": str(root / "cache")})
    assert run.returncode == 0, run.stderr
    return types.SimpleNamespace(args=args, out=out, run=run)


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of the session's trained run for one test: ``.args`` (its ``mgf train`` arguments but ``--quiet``,
    ``--epochs`` and ``-o``), ``.out`` (this test's copy of the folder: give ``-o out / "m.safetensors"``), ``.run``
    (its process)."""
    out = tmp_path / "out"
    shutil.copytree(trained_once.out, out)
    return types.SimpleNamespace(args=trained_once.args, out=out, run=trained_once.run)
