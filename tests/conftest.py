"""Shared fixtures: random bundles on disk, in-process plugin registration, a Markov-chain model."""

import numpy as np
import pytest

from mgf import Model, State, bundle, registry


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
    from mgf.plugins.repr_tokens import Tokens

    class CountingTokens(Tokens):
        reads = 0

        def read(self, path):
            CountingTokens.reads += 1
            return super().read(path)

    return CountingTokens
