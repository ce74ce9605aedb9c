"""Metrics against values worked out by hand on small crafted pieces."""

import math

import pytest

from mgf.music import metrics

# C major arpeggio, one note per half second, then a held C major triad for a second
ARPEGGIO = [(60, 80, 0.0, 0.5), (64, 80, 0.5, 1.0), (67, 80, 1.0, 1.5), (72, 80, 1.5, 2.0)]
TRIAD = [(60, 80, 2.0, 3.0), (64, 80, 2.0, 3.0), (67, 80, 2.0, 3.0)]
PIECE = ARPEGGIO + TRIAD


def test_pitch_classes():
    histogram = metrics.pitch_class_histogram(PIECE)
    assert histogram[0] == pytest.approx(3 / 7) and histogram[4] == pytest.approx(2 / 7) and histogram[7] == pytest.approx(2 / 7)
    assert metrics.pitch_class_entropy(PIECE) == pytest.approx(-(3 / 7 * math.log2(3 / 7) + 2 * 2 / 7 * math.log2(2 / 7)))
    assert metrics.pitch_class_entropy([(60, 80, 0, 1)] * 3) == 0.0
    assert metrics.pitches_used(PIECE) == 4 and metrics.pitch_range(PIECE) == 12
    assert metrics.pitch_classes_used(PIECE) == 3  # C, E, G (the octave C5 is the same class)
    assert metrics.pitch_classes_used([(60 + i, 80, i, i + 1) for i in range(24)]) == 12


def test_velocity_spread():
    assert metrics.velocity_spread(PIECE) == 0.0
    loud_soft = [(60, 100, 0, 1), (62, 60, 1, 2), (64, 100, 2, 3), (65, 60, 3, 4)]
    assert metrics.velocity_spread(loud_soft) == pytest.approx(20.0)  # population std of 100, 60, 100, 60


def test_scale_consistency():
    assert metrics.scale_consistency(PIECE) == 1.0
    chromatic = [(60 + i, 80, i, i + 1) for i in range(12)]
    assert metrics.scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_density_polyphony_and_empty_beats():
    assert metrics.note_density(PIECE) == pytest.approx(7 / 3.0)
    assert metrics.polyphony(PIECE) == pytest.approx((2.0 * 1 + 1.0 * 3) / 3.0)
    gap = [(60, 80, 0.0, 0.5), (62, 80, 1.5, 2.0)]  # beats: busy, empty, empty, busy
    assert metrics.empty_beat_rate(gap) == pytest.approx(0.5)


def test_repetition():
    riff = [(p, 80, i * 0.25, i * 0.25 + 0.25) for i, p in enumerate([60, 62, 64, 65] * 3)]
    # 9 four-note windows; the first 4 are new, the rest repeat
    assert metrics.repetition(riff) == pytest.approx(5 / 9)
    assert metrics.repetition(ARPEGGIO) == 0.0


def test_empty_piece():
    assert all(value == 0.0 for value in metrics.measure([]).values())
