"""Every built-in plugin passes the contract suites of ``mgf.testing``, and the suites' registration helper isolates."""

import os
import subprocess
import sys
import textwrap

import mgf
import mgf.testing
import numpy as np
import pytest
from mgf.contract import bundle, registry
from mgf.contract.transformer import Transformer

#: the suites' tests that cannot apply to a built-in here, and skip; any other skip in this file fails (conftest.py)
NOT_APPLICABLE = {
    "TestTokens": {"test_notes_are_valid_and_agree_with_token_pitches", "test_transpose_moves_pitches"},  # bare ids
    "TestAudio": {"test_notes_are_valid_and_agree_with_token_pitches", "test_transpose_moves_pitches"},  # sound frames
    "TestMotifs": {"test_refuses_representations_it_cannot_serve"},  # serves every representation
    "TestMotifsOnTokens": {"test_refuses_representations_it_cannot_serve"},
    "TestMotifsOnTransformer": {"test_refuses_representations_it_cannot_serve"},
    "TestMotifsOnTokensOnTransformer": {"test_refuses_representations_it_cannot_serve"},
}

# -- representations -----------------------------------------------------------------------


class TestTokens(mgf.testing.RepresentationContract):
    name = "tokens"
    config = {"vocab_size": 40}
    sequences = ([0, 5, 38, 1], [7] * 30)


class TestNotes(mgf.testing.RepresentationContract):
    name = "notes"
    sequences = ([2, 0, 0, 1, 9, 0, 14, 0, 0, 0, 1, 0, 2], [30, 31, 32, 0, 0, 1, 0, 4])


class TestNotesNarrow(mgf.testing.RepresentationContract):
    name = "notes"
    config = {"steps_per_quarter": 2, "min_pitch": 60, "max_pitch": 72, "qpm": 90.0}
    sequences = ([2, 0, 3, 0, 1, 13, 0, 5], [14, 0, 2])  # C4 C#4 rest B4 D#4, and one that cannot move up: C5 C4


class TestMidi(mgf.testing.RepresentationContract):
    name = "midi"


class TestMidiCoarse(mgf.testing.RepresentationContract):
    name = "midi"
    config = {"time_shift_ms": 50, "max_shift_steps": 20, "velocity_bins": 8, "max_note_seconds": 2.0}


class TestAudio(mgf.testing.RepresentationContract):
    name = "audio"
    config = {"sample_rate": 8000, "n_fft": 256, "hop": 64, "n_mels": 16, "codebook_size": 12, "griffin_lim_iters": 4}
    lossless = False  # frames are quantised to a codebook and phase is estimated: a round trip is close, not exact

    def make_representation(self):
        audio = super().make_representation()
        audio.load_tensors({"codebook": np.random.default_rng(0).normal(-4, 2, (12, 16)).astype(np.float32)})
        return audio


# -- model backends ------------------------------------------------------------------------


class TestNative(mgf.testing.BackendContract):
    name = "native"


class TestNativeThreads(mgf.testing.BackendContract):
    name = "native"
    options = {"threads": 2}


class TestNativeTransformer(mgf.testing.BackendContract):
    """Transformer bundles (learned and rotary positions, a context of 8 that the suite's 12 steps cross)."""

    name = "native"

    def model_files(self, folder):
        paths = []
        for i, positions in enumerate(("learned", "rotary")):
            path = folder / f"transformer-{i}.safetensors"
            shape = Transformer(heads=2, context=8, mlp=24, positions=positions, tied=positions == "learned")
            bundle.write(bundle.random_bundle(23 + i, (12, 12), seed=i, transformer=shape), path)
            paths.append(path)
        return paths


class TestNativeTransformerThreads(TestNativeTransformer):
    options = {"threads": 2}


class TestNumpy(mgf.testing.BackendContract):
    """The reference against itself: the batching, take, thread and error checks still bite."""

    name = "numpy"


class TestKeras(mgf.testing.BackendContract):
    name = "keras"
    architectures = ((23, (16,), None), (41, (24, 12), 8))
    atol = 1e-4

    @pytest.fixture(autouse=True)
    def _needs_keras(self):
        pytest.importorskip("tensorflow")


# -- samplers ------------------------------------------------------------------------------


class TestGreedy(mgf.testing.SamplerContract):
    name = "greedy"
    deterministic = True


class TestTemperature(mgf.testing.SamplerContract):
    name = "temperature"
    options = {"temperature": 0.8, "top_k": 5, "top_p": 0.9}


class TestBeam(mgf.testing.SamplerContract):
    name = "beam"
    options = {"beam_size": 4}
    deterministic = True


class TestSampledBeam(mgf.testing.SamplerContract):
    name = "beam"
    options = {"beam_size": 3, "branch_factor": 2, "steps_per_iteration": 3}


# -- constraints ---------------------------------------------------------------------------


class PitchConstraint(mgf.testing.ConstraintContract):
    """A constraint on pitch, on a representation that says which tokens start which pitch (notes and midi do)."""

    refuses = ("tokens",)

    def test_the_representation_says_which_tokens_start_which_pitch(self):
        assert mgf.get_representation(self.representation).token_pitches() is not None


def started_pitches(pieces, representation):
    """Per row, the MIDI pitches that start, in order."""
    pitches = representation.token_pitches()
    return [pitches[row][pitches[row] >= 0] for row in pieces]


class TestScale(PitchConstraint):
    name = "scale"
    options = {"key": "D minor"}
    classes = {2, 4, 5, 7, 9, 10, 0}  # of the key, by hand
    bad_options = ({"key": "H major"}, {"key": "C nonsense"}, {"key": ""})

    def assert_obeyed(self, pieces, representation):
        for row in started_pitches(pieces, representation):
            assert set((row % 12).tolist()) <= self.classes


class TestScaleOnMidi(TestScale):
    representation = "midi"
    options = {"key": "F# pentatonic"}
    classes = {6, 8, 10, 1, 3}


class TestPitchRange(PitchConstraint):
    name = "pitch-range"
    options = {"low": "C4", "high": "G4"}
    bad_options = ({"low": "C99"}, {"low": "G4", "high": "C4"}, {"low": None, "high": None})

    def assert_obeyed(self, pieces, representation):
        for row in started_pitches(pieces, representation):
            assert ((row >= 60) & (row <= 67)).all()


class TestNoRepeat(PitchConstraint):
    name = "no-repeat"
    options = {"max_repeats": 1}

    def assert_obeyed(self, pieces, representation):
        for row in started_pitches(pieces, representation):
            assert not (row[1:] == row[:-1]).any()


class TestMotifs(mgf.testing.ConstraintContract):
    """Soft, on any representation: with a bonus of 50 nats, what followed the last earlier passage comes next while
    the restatement is shorter than max_run."""

    name = "motifs"
    options = {"length": 2, "bonus": 50.0, "max_run": 5}
    bad_options = ({"length": 0}, {"bonus": -1.0}, {"bonus": float("nan")}, {"max_run": 0})

    def assert_obeyed(self, pieces, representation):
        length, max_run = self.options["length"], self.options["max_run"]
        for row in pieces.tolist():
            run = 0  # tokens in a row that were what the bonus favoured
            for step in range(len(row)):
                favoured = restated(row[:step], length)
                if favoured is not None and run < max_run:
                    assert row[step] == favoured, f"step {step} of {row}"
                run = run + 1 if favoured is not None and row[step] == favoured else 0


def restated(history, length):
    """What ``motifs`` favours after ``history`` (docs/contract.md): the token after the most recent earlier
    occurrence of its last ``length`` tokens that ends before they begin, or None; an oracle of plain loops."""
    last = history[len(history) - length:]
    for start in range(len(history) - 2 * length, -1, -1):
        if history[start:start + length] == last:
            return history[start + length]
    return None


class TestMotifsOnTokens(TestMotifs):
    representation = "tokens"


# -- the suites' own machinery -------------------------------------------------------------

FAKE_PLUGIN = '''
import numpy as np
import mgf

class Lowest(mgf.Policy):
    name = "lowest"
    def choose(self, logits, ctx):
        return np.argmax(logits > -np.inf, axis=1).astype(np.int32)

@mgf.hookimpl
def register_samplers(register):
    register(Lowest)
'''


@pytest.fixture
def installed(tmp_path):
    """A folder holding the plugin module ``fakeplug`` installed under the entry point ``fake`` (a dist-info, no pip)."""
    (tmp_path / "fakeplug.py").write_text(FAKE_PLUGIN)
    info = tmp_path / "mgf_fake-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mgf-fake\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[mgf]\nfake = fakeplug\n")
    return tmp_path


@pytest.mark.parametrize("order", ["entry points first", "entry points loaded by registered"])
def test_registered_works_whether_or_not_the_plugin_is_installed(installed, order):
    """Both orders of loading: the plugin is usable inside, registered once, and afterwards the registry is
    what loading the plugins gives (the documented "as before": ``registered`` loads them first)."""
    env = {**os.environ, "PYTHONPATH": str(installed), "MGF_LOAD_PLUGINS": "fake"}
    names = "print([name for name, _ in registry.pm.list_name_plugin()])"
    loading = f"from mgf import registry\nregistry.load_plugins()\n{names}"
    loaded = subprocess.run([sys.executable, "-c", loading], capture_output=True, text=True, env=env, timeout=120)
    assert "'fake'" in loaded.stdout, loaded.stderr
    script = textwrap.dedent(f'''
        import warnings
        warnings.simplefilter("error")
        import fakeplug
        import mgf.testing
        from mgf.contract import registry
        if {order == "entry points first"!r}:
            registry.load_plugins()
        with mgf.testing.registered(fakeplug):
            entry = registry.entry("samplers", "lowest")
            assert [p for p in registry.pm.get_plugins() if p is fakeplug] == [fakeplug]
            print(entry.distribution)
        {names}
        assert registry.entry("samplers", "lowest").distribution == "mgf-fake"
        assert registry.pm.get_plugin("fake") is fakeplug
    ''')
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["mgf-fake", loaded.stdout.strip()]


def test_registered_restores_the_registry(installed, monkeypatch):
    registry.load_plugins()  # before the fake distribution is on the path: here it is only a module
    monkeypatch.syspath_prepend(str(installed))
    import fakeplug

    before = registry.pm.list_name_plugin()
    with mgf.testing.registered(fakeplug):
        assert registry.entry("samplers", "lowest").cls.name == "lowest"
    assert registry.pm.list_name_plugin() == before
    with pytest.raises(mgf.UsageError, match="no sampler named 'lowest'"):
        registry.entry("samplers", "lowest")


def test_importing_mgf_loads_no_pytest_and_the_suites_no_tensorflow_or_music21():
    script = ("import sys, mgf; assert 'pytest' not in sys.modules; import mgf.testing; "
              "print(sorted(m for m in ('tensorflow', 'music21', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# every sampler and constraint suite above again, on a Transformer run by the native kernel, past its context
for _suite in (TestGreedy, TestTemperature, TestBeam, TestSampledBeam, TestScale, TestScaleOnMidi, TestPitchRange,
               TestNoRepeat, TestMotifs, TestMotifsOnTokens):
    globals()[f"{_suite.__name__}OnTransformer"] = type(f"{_suite.__name__}OnTransformer", (_suite,),
                                                        {"model_arch": "transformer"})


class TestBrokenSampler(mgf.testing.SamplerContract):
    """The suite fails a sampler that breaks the contract (here: it always chooses token 1, forbidden or not)."""

    name = "stubborn"

    class plugin:
        class Stubborn(mgf.Policy):
            name = "stubborn"

            def choose(self, logits, ctx):
                return np.ones(len(logits), np.int32)

        @staticmethod
        @mgf.hookimpl
        def register_samplers(register):
            register(TestBrokenSampler.plugin.Stubborn)

    def test_never_a_forbidden_token(self, tmp_path):
        with pytest.raises(mgf.PluginError, match="forbids"):
            super().test_never_a_forbidden_token(tmp_path)
