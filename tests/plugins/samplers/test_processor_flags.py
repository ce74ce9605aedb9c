"""The processors' flags of `mgf generate`: every sampler, in the order typed, what the API does with the same list."""

import os
import shutil
import subprocess
import sys

import pytest

import mgf
from mgf import MinP, RepetitionPenalty, Temperature

MGF = shutil.which("mgf") or os.path.join(os.path.dirname(sys.executable), "mgf")


def generate(folder, *args, name="out.txt"):
    """``mgf generate ARGS -o folder/name``: the completed process and the written file's path."""
    out = folder / name
    result = subprocess.run([MGF, "generate", "--quiet", *map(str, args), "-o", str(out)], capture_output=True, text=True)
    return result, out


def tokens(folder, *args):
    result, out = generate(folder, "--repr", "tokens", "--steps", "24", "--seed", "5", *args)
    assert result.returncode == 0, result.stderr
    return [int(t) for t in out.read_text().split()]


@pytest.fixture(scope="module")
def tokens_model():
    return mgf.load_model(mgf.get_representation("tokens").default_bundle)


@pytest.mark.parametrize("sampler", ["greedy", "temperature", "beam"])
def test_repetition_penalty_and_min_p_work_with_every_sampler(tmp_path, tokens_model, sampler):
    """--repetition-penalty 1.3 --min-p 0.1 are RepetitionPenalty(1.3) then MinP(0.1), under each built-in sampler."""
    shaped = tokens(tmp_path, "--sampler", sampler, "--repetition-penalty", "1.3", "--min-p", "0.1")
    api = mgf.generate(tokens_model, 24, sampler=sampler, seed=5, num_outputs=1,
                       processors=[RepetitionPenalty(1.3), MinP(0.1)])[0]
    assert shaped == api.tolist()
    if sampler != "beam":  # a plain beam keeps the model's most probable path: the penalty must move it (below)
        assert shaped != tokens(tmp_path, "--sampler", sampler)


def test_the_order_typed_is_the_order_applied(tmp_path):
    """min-p before a temperature of 3 keeps z >= max z + log p, after it z >= max z + 3 log p: other tokens.

    Top-k and a temperature commute (a temperature keeps the ranking), so their order changes nothing.  The
    shipped notes model, whose steps are sure enough for min-p 0.1 to cut (the tokens model's are nearly flat).
    """
    notes = mgf.load_model(mgf.get_representation("notes").default_bundle)

    def written(*args, processors=None):
        """The notes file the command writes, or (``processors``) the one the API's tokens make."""
        name = f"{len(list(tmp_path.iterdir()))}.mid"
        if processors is not None:
            pieces = mgf.generate(notes, 48, seed=5, processors=processors)
            notes.representation.write(pieces, tmp_path / name)
            return (tmp_path / name).read_bytes()
        result, out = generate(tmp_path, "--repr", "notes", "--steps", "48", "--seed", "5", *args, name=name)
        assert result.returncode == 0, result.stderr
        return out.read_bytes()

    before = written("--min-p", "0.1", "--temperature", "3")
    after = written("--temperature", "3", "--min-p", "0.1")
    assert before != after
    assert before == written(processors=[MinP(0.1), Temperature(3.0)])
    assert after == written(processors=[Temperature(3.0), MinP(0.1)])
    assert written("--top-k", "5", "--temperature", "0.5") == written("--temperature", "0.5", "--top-k", "5")


def test_repetition_penalty_changes_beam_on_the_shipped_notes_model(tmp_path):
    """The processors reach beam search through ctx.constrain: its output moves, and stays reproducible."""
    common = ["--repr", "notes", "--sampler", "beam", "--steps", "48", "--seed", "2"]
    plain, first = generate(tmp_path, *common, name="plain.mid")
    shaped, second = generate(tmp_path, *common, "--repetition-penalty", "1.5", name="shaped.mid")
    again, third = generate(tmp_path, *common, "--repetition-penalty", "1.5", name="again.mid")
    assert plain.returncode == shaped.returncode == again.returncode == 0, shaped.stderr
    assert first.read_bytes() != second.read_bytes()
    assert second.read_bytes() == third.read_bytes()


def test_a_processor_flag_replaces_the_bundles_default_of_its_kind(tmp_path):
    """The shipped notes model samples at top-p 0.95: --top-p 0.95 gives its tokens, --top-p 0.3 replaces it (not after it)."""
    common = ["--repr", "notes", "--steps", "48", "--seed", "4"]
    outputs = {}
    for label, extra in {"default": [], "same": ["--top-p", "0.95"], "other": ["--top-p", "0.3"]}.items():
        result, out = generate(tmp_path, *common, *extra, name=f"{label}.mid")
        assert result.returncode == 0, result.stderr
        outputs[label] = out.read_bytes()
    assert outputs["same"] == outputs["default"] != outputs["other"]


@pytest.mark.parametrize("args, message", [
    (["--top-p", "2"], "mgf: error: --top-p 2: TopP: p must be in (0, 1], got 2.0"),
    (["--top-k", "x"], "mgf: error: --top-k must be an integer, got 'x'"),
    (["--min-p", "-0.5"], "mgf: error: --min-p -0.5: MinP: p must be in [0, 1], got -0.5"),
    (["--repetition-penalty", "nan"], "mgf: error: --repetition-penalty nan: RepetitionPenalty: penalty must be a finite number"),
    (["--temperature", "warm"], "mgf: error: --temperature must be a number, got 'warm'"),
])
def test_bad_processor_values_are_one_line_exit_2(tmp_path, args, message):
    result, out = generate(tmp_path, "--repr", "tokens", "--steps", "4", *args)
    assert result.returncode == 2 and result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
