"""Dynamics for written MIDI (issue 24): the shipped midi model's corpus has none, so accents and swells are added
when writing; with the option off, the model's own velocities are written as before."""

import subprocess
import sys

import mido
import numpy as np
import pytest

import mgf
from mgf.plugins.representations import midi_dynamics
from mgf.plugins.representations.midi import TEMPO


def velocities_and_beats(path):
    """(velocity, onset in beats of the piece's pulse, from its first onset) of every note-on of a MIDI file."""
    midi = mido.MidiFile(path)
    found, ticks = [], 0
    for message in midi.tracks[1]:
        ticks += message.time
        if message.type == "note_on" and message.velocity > 0:
            found.append((message.velocity, ticks / midi.ticks_per_beat * TEMPO / 1e6))
    found = np.array(found)
    found[:, 1] -= found[:, 1].min()
    found[:, 1] /= midi_dynamics.pulse(found[:, 1])
    return found


@pytest.fixture(scope="module")
def piece():
    model = mgf.load_model(mgf.get_representation("midi").default_bundle)
    return mgf.generate(model, 800, seed=2)


def test_off_writes_the_model_velocities_as_before(piece, tmp_path):
    plain = mgf.get_representation("midi", max_note_seconds=6)
    assert plain.dynamics == "none" and "dynamics" not in plain.config()  # bundles and caches keep their keys
    plain.write(piece, tmp_path / "plain.mid")
    written = velocities_and_beats(tmp_path / "plain.mid")
    notes = plain.to_notes(piece)
    assert len(written) == len(notes) and sorted(written[:, 0]) == sorted(v for _, v, _, _ in notes)
    assert set(written[:, 0]) == {78}  # the corpus's one velocity: music21 plays every chorale note at 80


def test_accents_spread_velocities_and_stress_downbeats(piece, tmp_path):
    accented = mgf.get_representation("midi", max_note_seconds=6, dynamics="accents")
    plain = mgf.get_representation("midi", max_note_seconds=6)
    accented.write(piece, tmp_path / "accents.mid")
    plain.write(piece, tmp_path / "plain.mid")
    shaped, flat = velocities_and_beats(tmp_path / "accents.mid"), velocities_and_beats(tmp_path / "plain.mid")
    np.testing.assert_array_equal(np.sort(shaped[:, 1]), np.sort(flat[:, 1]))  # the same notes at the same times
    assert len(set(shaped[:, 0])) >= 10 and shaped[:, 0].min() >= 1 and shaped[:, 0].max() <= 127
    beats = shaped[:, 1]
    on_beat = np.abs(beats - np.round(beats)) <= midi_dynamics.ON_BEAT
    downbeat = on_beat & (np.round(beats) % 4 == 0)
    offbeat = ~on_beat
    assert downbeat.sum() >= 10 and offbeat.sum() >= 10  # the chorale model keeps the 120 qpm grid it was trained on
    assert shaped[downbeat, 0].mean() > shaped[on_beat & ~downbeat, 0].mean() > shaped[offbeat, 0].mean()
    assert shaped[downbeat, 0].mean() - shaped[offbeat, 0].mean() >= 15


def test_phrases_swell_and_fade():
    # the same metric place (a downbeat) at a phrase's edge and in its middle (bar 3 of 4): the middle is louder
    assert midi_dynamics.velocity_at(78, 8.0) - midi_dynamics.velocity_at(78, 0.0) == 2 * midi_dynamics.SWELL
    assert midi_dynamics.velocity_at(78, 16.0) == midi_dynamics.velocity_at(78, 0.0)  # the next phrase starts again
    assert midi_dynamics.shape([(60, 78, 0.0, 0.5)], "none") == [(60, 78, 0.0, 0.5)]
    assert midi_dynamics.velocity_at(125, 8.0) == 127 and midi_dynamics.velocity_at(2, 0.5) == 1  # clipped


@pytest.mark.parametrize("qpm", [72, 96, 120, 140])
def test_the_pulse_is_the_pieces_own(qpm):
    """Chorales play at their metronome marks (bwv66.6: 96 qpm): accents follow the piece's beat, not the file's."""
    beat = 60 / qpm
    eighths = np.random.default_rng(qpm).random(32) < 0.4  # passing notes between some beats
    onsets = np.concatenate([np.arange(32) * beat, (np.arange(32) + 0.5)[eighths] * beat])
    assert midi_dynamics.pulse(onsets) == pytest.approx(beat, abs=0.006)


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "mgf.cli.main", "generate", "--steps", "600", "--seed", "4", "--quiet",
                           *map(str, args)], capture_output=True, text=True, cwd=tmp_path)


def test_shipped_midi_model_writes_dynamics_by_default_and_none_turns_them_off(tmp_path):
    assert mgf.load_model(mgf.get_representation("midi").default_bundle).representation.dynamics == "accents"
    for args, name in ([], "default.mid"), (["--dynamics", "none"], "none.mid"), (["--workers", "2", "--num-outputs",
                                                                                   "2", "--dynamics", "none"], "w.mid"):
        result = cli(tmp_path, "--repr", "midi", *args, "-o", name)
        assert result.returncode == 0, result.stderr
    assert len(set(velocities_and_beats(tmp_path / "default.mid")[:, 0])) >= 10
    assert set(velocities_and_beats(tmp_path / "none.mid")[:, 0]) == {78}
    assert set(velocities_and_beats(tmp_path / "w-2.mid")[:, 0]) == {78}  # the workers write what the parent asks


@pytest.mark.parametrize("args, message", [
    (["--repr", "notes", "--dynamics", "accents"], "--dynamics: the notes representation writes no dynamics"),
    (["--repr", "midi", "--dynamics", "loud"], "option dynamics of representation 'midi' must be one of none, accents"),
])
def test_bad_dynamics_are_one_line_and_exit_2(tmp_path, args, message):
    result = cli(tmp_path, *args, "-o", "x.mid")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"mgf: error: {message}"), result.stderr
    assert not (tmp_path / "x.mid").exists()


def test_card_says_the_dynamics_are_added_not_learned():
    result = subprocess.run([sys.executable, "-m", "mgf.cli.main", "card", "--repr", "midi"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "dynamics when writing: accents (added by mgf, not learned;" in result.stdout
    assert "velocity_spread 0: the corpus has no dynamics (every note at one velocity)" in result.stdout
