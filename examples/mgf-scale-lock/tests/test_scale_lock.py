import mgf
import mgf.testing
import mgf_scale_lock
import numpy as np
import pytest
from mgf_scale_lock import in_key


def needs_pitches():
    """The sampler needs token_pitches(), which mgf's notes representation has (a regression if not)."""
    assert mgf.get_representation("notes").token_pitches() is not None


class TestContract(mgf.testing.SamplerContract):
    name = "scale-lock"
    plugin = mgf_scale_lock
    representation = "notes"
    options = {"key": "Eb minor", "temperature": 0.9}
    bad_options = ({"key": "H major"},)

    @pytest.fixture(autouse=True)
    def _pitches(self):
        needs_pitches()


@pytest.fixture(autouse=True)
def scale_lock():
    with mgf.testing.registered(mgf_scale_lock):
        yield


def test_keys():
    assert np.flatnonzero(in_key("C major")[60:72]).tolist() == [0, 2, 4, 5, 7, 9, 11]
    assert np.flatnonzero(in_key("Eb minor")[60:72]).tolist() == [1, 3, 5, 6, 8, 10, 11]


def random_model(folder, representation):
    rep = mgf.get_representation(representation)
    path = folder / "m.safetensors"
    mgf.contract.bundle.write(mgf.contract.bundle.random_bundle(rep.vocab_size, (16,), 8, seed=1, scale=2.0,
                                              representation={"name": representation, "config": rep.config()}), path)
    return mgf.load_model(path)


def test_every_note_is_in_the_key(tmp_path):
    needs_pitches()
    model = random_model(tmp_path, "notes")
    pieces = mgf.generate(model, 200, sampler="scale-lock", key="F# major", seed=0, num_outputs=4)
    pitches = model.representation.token_pitches()[pieces]
    assert (pitches >= 0).sum() > 50
    assert set((pitches[pitches >= 0] % 12).tolist()) <= {6, 8, 10, 11, 1, 3, 5}


def test_a_representation_without_pitches_is_refused(tmp_path):
    with pytest.raises(mgf.UsageError, match="pitched"):
        mgf.generate(random_model(tmp_path, "tokens"), 5, sampler="scale-lock")
