"""``mgf train`` scores the trained model in memory and writes its bundle once (contract 3, "One pass").

Before, it wrote the bundle, read it back to score it, streamed the validation pieces twice (scores,
then card) and wrote the whole file again.
"""

import pytest

import mgf
from mgf.contract import bundle

pytest.importorskip("keras")


def test_the_bundle_is_written_once_with_the_scores_of_the_weights_it_holds(progressions, tmp_path, monkeypatch):
    from mgf.plugins.keras import train as keras_train

    monkeypatch.setenv("MGF_CACHE_DIR", str(tmp_path / "cache"))
    writes, reads, scored = [], [], []
    real_write, real_read, real_load = bundle.write, bundle.read, mgf.load_model
    monkeypatch.setattr(bundle, "write", lambda loaded, path: writes.append(str(path)) or real_write(loaded, path))
    monkeypatch.setattr(bundle, "read", lambda path, *a, **k: reads.append(str(path)) or real_read(path, *a, **k))
    monkeypatch.setattr(keras_train.mgf, "load_model",
                        lambda source, *a, **k: scored.append(source) or real_load(source, *a, **k))
    out = tmp_path / "m.safetensors"
    keras_train.train(mgf.get_representation("tokens", vocab_size=41), [str(progressions)], str(out), hidden=(16,),
                      embedding_dim=8, seq_len=30, batch_size=16, epochs=2, lr=0.01, val_split=0.2, quiet=True)
    assert len(writes) == 1 and reads == []  # one write (to the temporary renamed into place), nothing read back
    (in_memory,) = scored
    assert isinstance(in_memory, bundle.Bundle) and in_memory.path is None
    monkeypatch.undo()
    written = bundle.read(out)
    assert written.tensors.keys() == in_memory.tensors.keys()
    assert all((written.tensors[k] == v).all() for k, v in in_memory.tensors.items())  # the weights that were scored
    scores = written.training["validation_cross_entropy"]
    assert set(scores) == {"model", "unigram", "5-gram"} and scores["model"] < scores["unigram"]
    assert written.training["card"] == {"skipped": "representation 'tokens' has no notes to render or measure"}
