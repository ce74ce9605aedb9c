"""``motifs``: what it favours, checked against a table written from its documentation (docs/contract.md), through
``mgf.generate``: with a bonus of 50 nats the favoured token is the greedy choice; with none favoured, the choice is
the model's own."""

import numpy as np
import pytest

import mgf

HISTORY = [5, 6, 7, 1, 5, 6, 8, 2, 5, 6]


def tokens_model():
    model = mgf.load_model(mgf.get_representation("tokens").default_bundle)
    model.defaults = {}  # the model's own choice, no default rule
    return model


@pytest.mark.parametrize("history, length, favoured", [
    (HISTORY, 2, 8),  # [5, 6] last occurred before [8]
    (HISTORY, 1, 8),  # [6]: likewise
    (HISTORY, 3, None),  # [2, 5, 6] never occurred before
    ([3, 3, 3], 2, None),  # [3, 3] overlapping itself does not count
    ([3, 3, 3, 3, 4], 1, None),  # [4] never occurred before
    ([3, 3, 3, 3], 2, 3),  # [3, 3] at 0 ends before the last two begin
    ([9, 4, 9, 7, 9, 4], 2, 9),  # the most recent earlier occurrence wins: [9, 4] at 0, followed by 9
    ([1, 2, 9, 1, 2, 7, 1, 2], 2, 7),  # of two earlier occurrences the later one
])
def test_motifs_favours_what_followed_the_last_earlier_passage(history, length, favoured):
    model = tokens_model()
    primer = np.array(history, np.int32)
    own = mgf.generate(model, 1, sampler="greedy", primer=primer, constraints=[])[-1]
    chosen = mgf.generate(model, 1, sampler="greedy", primer=primer, constraints=["motifs"], length=length,
                          bonus=50.0)[-1]
    assert chosen == (own if favoured is None else favoured)
    assert favoured is None or own != favoured  # else the case could not fail


def test_the_bonus_stops_after_max_run_tokens():
    """A primer that states [1, 2, 3, 4] and begins it again: with bonus 50 greedy restates 3, 4, 1 (a run of 3),
    then with max_run 3 the model's own choice returns, where a longer cap restates on (2)."""
    model = tokens_model()
    primer = [1, 2, 3, 4, 1, 2]
    kwargs = dict(sampler="greedy", primer=np.array(primer, np.int32), constraints=["motifs"], length=2, bonus=50.0)
    capped = mgf.generate(model, 4, max_run=3, **kwargs)[len(primer):].tolist()
    assert mgf.generate(model, 4, max_run=4, **kwargs)[len(primer):].tolist() == [3, 4, 1, 2]
    own = mgf.generate(model, 1, sampler="greedy", primer=np.array(primer + [3, 4, 1], np.int32))[-1]
    assert own != 2 and capped == [3, 4, 1, own]
