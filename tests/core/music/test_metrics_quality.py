"""Distances between the distributions of a metric over two sets of pieces, against closed forms."""

import math
import warnings
from statistics import NormalDist

import numpy as np
import pytest

import mgf
from mgf.music import metrics


def normal_sample(n: int, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """``n`` evenly spaced quantiles of a normal: a sample with no randomness in it."""
    return np.array([NormalDist(mean, sd).inv_cdf((i + 0.5) / n) for i in range(n)])


def smoothed_sd(values) -> float:
    """Standard deviation of a Gaussian KDE of ``values``: the sample's own, widened by the bandwidth."""
    return math.sqrt(np.var(values) + metrics.scott_bandwidth(values) ** 2)


def test_scott_bandwidth():
    values = np.arange(10.0)
    assert metrics.scott_bandwidth(values) == pytest.approx(np.std(values, ddof=1) * 10 ** -0.2)
    assert metrics.scott_bandwidth([3.0]) == 0.0


def test_kde_integrates_to_one_and_peaks_at_the_values():
    grid = np.linspace(-10, 10, 4001)
    density = metrics.kde([-2.0, 2.0], grid, 0.5)
    assert density.sum() * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-6)
    assert density[np.argmax(density)] == pytest.approx(1 / (2 * 0.5 * math.sqrt(2 * math.pi)), rel=1e-3)
    assert abs(grid[np.argmax(density)]) == pytest.approx(2.0, abs=0.01)


def test_identical_sets_overlap_fully():
    values = [1.0, 2.5, 2.5, 4.0, 7.0]
    assert metrics.overlap_area(values, values) == pytest.approx(1.0, abs=1e-9)
    assert metrics.kl_divergence(values, values) == pytest.approx(0.0, abs=1e-9)
    assert metrics.overlap_area([1.0] * 5, [1.0] * 3) == 1.0  # one value on both sides


def test_disjoint_sets_do_not_overlap():
    low, high = [0.0, 0.5, 1.0, 1.5], [100.0, 100.5, 101.0]
    assert metrics.overlap_area(low, high) < 1e-6
    assert metrics.kl_divergence(low, high) > 20
    assert metrics.overlap_area([1.0] * 4, [2.0] * 4) < 1e-6  # two different constants


def test_shifted_normals_overlap_as_the_closed_form_says():
    # N(0, s) and N(1, s) overlap by 2 * Phi(-1 / (2 s)); KL is 1 / (2 s^2)
    a = normal_sample(2000)
    s = smoothed_sd(a)
    assert metrics.overlap_area(a, a + 1) == pytest.approx(2 * NormalDist().cdf(-0.5 / s), abs=2e-3)
    assert metrics.kl_divergence(a, a + 1) == pytest.approx(1 / (2 * s * s), rel=0.03)
    assert metrics.overlap_area(a, a + 1) == pytest.approx(metrics.overlap_area(a + 1, a), abs=1e-9)


def test_normals_of_different_spread_overlap_as_the_closed_form_says():
    # N(0, 1) and N(0, 2) cross at x = +-sqrt(8 ln 2 / 3): the overlap is the first's tails and the second's middle
    cross = math.sqrt(8 * math.log(2) / 3)
    expected = 2 * (1 - NormalDist().cdf(cross)) + (2 * NormalDist(0, 2).cdf(cross) - 1)
    assert metrics.overlap_area(normal_sample(4000), normal_sample(4000, sd=2.0)) == pytest.approx(expected, abs=0.01)


def test_more_distant_sets_overlap_less():
    a = normal_sample(200)
    areas = [metrics.overlap_area(a, a + shift) for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert areas == sorted(areas, reverse=True) and areas[0] == pytest.approx(1.0)


@pytest.mark.parametrize("a, b", [([], [1.0]), ([1.0], []), ([1.0, float("nan")], [1.0]), ([1.0], [float("inf")])])
def test_bad_sets_are_refused(a, b):
    with pytest.raises(ValueError):
        metrics.overlap_area(a, b)


def test_compare_sets_of_pieces():
    quiet = [(60, 40, 0.0, 1.0), (64, 40, 1.0, 2.0)]
    loud = [(60, 40, 0.0, 0.5), (67, 120, 0.5, 1.0)]
    table = metrics.compare([metrics.measure(quiet)] * 3, [metrics.measure(quiet), metrics.measure(loud)])
    assert set(table) == set(metrics.METRICS)
    density = table["note_density"]  # 1 note/s against the mean of 1 and 2
    assert density["generated"] == pytest.approx(1.0) and density["reference"] == pytest.approx(1.5)
    assert density["relative"] == pytest.approx(-1 / 3)
    assert 0 < density["overlap"] < 1 and density["kl"] > 0
    spread = table["velocity_spread"]  # 0 against the mean of 0 and 40
    assert spread["reference"] == pytest.approx(20.0) and spread["relative"] == pytest.approx(-1.0)
    same = metrics.compare([metrics.measure(quiet)], [metrics.measure(quiet)])
    assert all(row["relative"] == 0 and row["overlap"] == 1.0 and row["kl"] == 0.0 for row in same.values())


def test_a_constant_set_is_smoothed_like_the_other():
    # four fifths of the corpus at 0, as often in an empty-beat rate; all generated pieces at 0
    corpus = [0.0] * 40 + [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
    assert metrics.overlap_area([0.0] * 20, corpus) == pytest.approx(0.8, abs=0.05)


def test_an_exhaustive_beam_on_the_shipped_melody_model_collapses_and_says_so():
    """Issue 12: ``beam --beam-size 8`` on ``notes`` writes whole notes; the search warns, the sampled beam moves,
    and the bundle's defaults make the beam a sampled one."""
    model = mgf.load_model(mgf.packaged_model("notes.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a sampled beam may still warn of a row that holds one note
        default = mgf.generate(model, 64, sampler="beam", beam_size=8, seed=0, num_outputs=8)
    assert np.mean([metrics.note_density(model.representation.to_notes(p)) for p in default]) > 1.0
    model.defaults = {}  # the sampler itself, as named
    representation = model.representation
    with pytest.warns(UserWarning, match="beam search collapsed: 1 of 1 output"):
        held = mgf.generate(model, 64, sampler="beam", beam_size=8)
    assert metrics.note_density(representation.to_notes(held)) < 1.0  # whole notes at 120 qpm: 0.5 a second
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampled = mgf.generate(model, 64, sampler="beam", beam_size=8, branch_factor=2, seed=0, num_outputs=8)
    assert np.mean([metrics.note_density(representation.to_notes(p)) for p in sampled]) > 1.0
    assert all("--steps-per-iteration" in str(w.message) for w in caught)  # advice for a sampled beam
