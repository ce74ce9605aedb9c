import math

import mgf
import mgf.testing
import mgf_bigram
import numpy as np
import pytest

PIECES = ([0, 1, 2, 1, 0, 3], [2, 2, 2, 4], [4, 3, 2, 1, 0])


def fitted(folder, pieces=PIECES, vocab_size=6):
    """A bigram model of ``tokens`` files holding ``pieces``."""
    tokens = mgf.get_representation("tokens", vocab_size=vocab_size)
    paths = []
    for i, piece in enumerate(pieces):
        paths.append(folder / f"piece{i}.txt")
        tokens.write(np.asarray(piece), paths[-1])
    mgf_bigram.fit(tokens, paths, folder / "bigram.npz")
    return folder / "bigram.npz"


class CountedModel(mgf.Model):
    """The reference: probabilities counted with plain Python from the pieces, smoothed by 0.1."""

    def __init__(self, pieces, vocab_size):
        start = vocab_size - 1
        self.table = []
        for a in range(vocab_size):
            follows = [b for piece in pieces for x, b in zip([start, *piece], piece) if x == a]
            total = len(follows) + 0.1 * vocab_size
            self.table.append([math.log((follows.count(b) + 0.1) / total) for b in range(vocab_size)])

    @property
    def vocab_size(self):
        return len(self.table)

    def initial_state(self, batch_size):
        return mgf_bigram.BigramState(np.zeros(batch_size, int))

    def step(self, tokens, state):
        return np.array([self.table[t] for t in tokens], np.float32), mgf_bigram.BigramState(np.array(tokens))


class TestContract(mgf.testing.BackendContract):
    name = "bigram"
    plugin = mgf_bigram

    def model_files(self, folder):
        return [fitted(folder)]

    def reference(self, path):
        return CountedModel(PIECES, 6)


@pytest.fixture(autouse=True)
def bigram():
    with mgf.testing.registered(mgf_bigram):
        yield


def load(path, **options):
    return mgf.plugin_class("models", "bigram")(**{"smoothing": 0.1, **options}).load(path)


def test_generates_only_pairs_it_has_seen(tmp_path):
    """With almost no smoothing, every generated pair occurred in the training pieces."""
    model = load(fitted(tmp_path), smoothing=1e-6)
    seen = {(a, b) for piece in PIECES for a, b in zip(piece, piece[1:])}
    for row in mgf.generate(model, 40, seed=0, num_outputs=5):
        assert set(zip(row[:-1].tolist(), row[1:].tolist())) <= seen


def test_the_representation_travels_with_the_model(tmp_path):
    model = load(fitted(tmp_path))
    assert model.representation.config() == {"vocab_size": 6}
    # the most frequent successor each time: 4 -> 3 -> 2 -> 1 (tied with 2: the lower id) -> 0 -> 1 -> 0
    assert mgf.generate(model, 6, sampler="greedy", primer=[4]).tolist() == [4, 3, 2, 1, 0, 1, 0]


def test_a_model_of_another_vocabulary_is_refused(tmp_path):
    path = fitted(tmp_path)
    data = dict(np.load(path))
    np.savez(tmp_path / "bad.npz", counts=np.ones((4, 4)), representation=data["representation"])
    with pytest.raises(mgf.BundleError, match="6"):
        load(tmp_path / "bad.npz")
