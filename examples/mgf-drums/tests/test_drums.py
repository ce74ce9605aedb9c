import mgf
import mgf.testing
import mgf_drums
import mido
import numpy as np
import pytest

BEAT = [0b101, 0, 0b100, 0, 0b110, 0, 0b100, 0b1, 0b101, 0, 0b100, 0, 0b110, 0, 0b100, 0]  # kick, snare, hats


class TestContract(mgf.testing.RepresentationContract):
    name = "drums"
    plugin = mgf_drums
    sequences = (BEAT, [0, 0, 511, 0, 0, 0], [0b10000000] * 5 + [0] * 3)


class TestContractTriplets(TestContract):
    config = {"steps_per_quarter": 3, "qpm": 90.0, "velocity": 60}


@pytest.fixture(autouse=True)
def drums():
    with mgf.testing.registered(mgf_drums):
        yield


def test_primer_text():
    drums = mgf.get_representation("drums")
    assert drums.parse_primer("kick+hat - snare+hat -").tolist() == [0b101, 0, 0b110, 0]


def test_written_file_is_general_midi_drums(tmp_path):
    mgf.get_representation("drums", qpm=100).write(np.asarray(BEAT[:5]), tmp_path / "beat.mid")
    midi = mido.MidiFile(tmp_path / "beat.mid")
    ons = [(m.note, m.channel) for m in midi if m.type == "note_on"]
    assert ons == [(36, 9), (42, 9), (42, 9), (38, 9), (42, 9)]
    assert midi.length == pytest.approx(5 * 0.15)  # five sixteenths at 100 quarter notes per minute


def test_reads_other_drum_keys_and_ignores_other_channels(tmp_path):
    track = mido.MidiTrack([mido.Message("note_on", channel=9, note=35, velocity=90, time=0),  # acoustic bass drum: kick
                            mido.Message("note_on", channel=0, note=60, velocity=90, time=0),  # a piano note: ignored
                            mido.Message("note_on", channel=9, note=59, velocity=90, time=240)])  # ride cymbal 2, 2 steps on
    midi = mido.MidiFile(ticks_per_beat=480, tracks=[track])
    midi.save(tmp_path / "x.mid")
    assert mgf.get_representation("drums").read(tmp_path / "x.mid").tolist() == [0b1, 0, 1 << 8]
