"""`mgf plot` draws a real image; `mgf eval` reports the metrics of real files."""

import json

import numpy as np
import pytest

from mgf import get_representation
from mgf.music import metrics
from helpers.cli import mgf_cli


@pytest.fixture
def arpeggio(tmp_path):
    midi = get_representation("midi")
    notes = [(60, 100, 0.0, 0.5), (64, 60, 0.5, 1.0), (67, 30, 1.0, 1.5), (72, 120, 1.5, 3.0)]
    midi.write(midi.encode(notes), tmp_path / "arp.mid")
    return tmp_path / "arp.mid", notes


def test_plot_writes_a_png_with_content(arpeggio, tmp_path):
    from matplotlib import image

    path, _ = arpeggio
    result = mgf_cli("plot", path, "-o", tmp_path / "roll.png")
    assert result.returncode == 0, result.stderr
    pixels = image.imread(tmp_path / "roll.png")
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 1000
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10  # bars, axes, text: not one colour


def test_plot_errors(tmp_path, arpeggio):
    result = mgf_cli("plot", arpeggio[0], "-o", tmp_path / "roll.jpg")
    assert result.returncode == 1 and ".png" in result.stderr and not (tmp_path / "roll.jpg").exists()


def test_eval_reports_the_metrics_of_the_file(arpeggio):
    path, notes = arpeggio
    result = mgf_cli("eval", path, "--json")
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)[str(path)]
    midi = get_representation("midi")
    expected = metrics.measure(midi.to_notes(midi.encode(notes)))  # the file holds velocities in bins
    for name, value in expected.items():
        assert measured[name] == pytest.approx(value, abs=0.02), name
    assert measured["pitch_range"] == 12 and measured["note_density"] == pytest.approx(4 / 3, abs=0.01)


def test_eval_with_a_reference_and_as_a_table(arpeggio):
    result = mgf_cli("eval", arpeggio[0], "--reference", "corpus:bach/bwv66.6", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["piece", "pitch_range", "pitches_used"]
    assert lines[2].startswith("reference: corpus:bach/bwv66.6 (mean of 1)")


def test_generate_plot(tmp_path):
    from mgf.contract import bundle

    notes = get_representation("notes")
    path = tmp_path / "m.safetensors"
    bundle.write(bundle.random_bundle(notes.vocab_size, (16,), 8, representation={"name": "notes", "config": notes.config()}), path)
    result = mgf_cli("generate", "--bundle", path, "--steps", "32", "--primer", "C4 D4", "--plot", "-o", tmp_path / "p.mid")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p.png").stat().st_size > 1000
