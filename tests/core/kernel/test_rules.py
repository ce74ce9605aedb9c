"""The rules of mgf.rules as the kernel runs them (RuleSet) against an oracle written from their documentation.

The oracle recomputes every row's state from its whole history at every step, in plain Python and numpy, from
the docstrings of mgf.rules and mgf.Clock; it imports nothing of the implementation.  Random vocabularies,
clocks, rule lists and histories; the RuleSet is fed token by token, as both generation loops feed it.
"""

import numpy as np
import pytest

import mgf
from mgf import InputError, TokenKind
from mgf.kernel._native import RuleSet

NOTE_ON, NOTE_OFF, SHIFT, REST, HOLD, BAR, POSITION = (TokenKind.NOTE_ON, TokenKind.NOTE_OFF, TokenKind.TIME_SHIFT,
                                                       TokenKind.REST, TokenKind.HOLD, TokenKind.BAR, TokenKind.POSITION)


# -- the oracle ---------------------------------------------------------------------------------------------------

def clock_steps(clock, tokens, bars=False):
    """The step each token falls at, then the step after them (mgf.Clock's docstring: BAR, POSITION, the rest);
    with ``bars``, also the bar the row is in after them."""
    steps, step, bar = [], 0, -1
    for token in tokens:
        steps.append(step)
        step, bar = moved(clock, step, bar, token)
    return (steps + [step], bar) if bars else steps + [step]


def moved(clock, step, bar, token):
    """The step and bar after ``token`` from ``step`` in ``bar``."""
    per_bar = clock.steps_per_beat * clock.beats_per_bar
    kind, move = int(clock.kinds[token]), int(clock.advance[token])
    if kind == BAR:
        return (bar + 1) * per_bar, bar + 1
    if kind == POSITION:
        return max(bar, 0) * per_bar + move, max(bar, 0)
    if move:
        return step + move, max(bar, (step + move) // per_bar) if per_bar else bar
    return step, bar


def sounding(clock, history):
    """The pitches sounding after ``history`` and the step each started at (NOTE_ON, NOTE_OFF, REST)."""
    onsets = {}
    for token, step in zip(history, clock_steps(clock, history)):
        kind, pitch = int(clock.kinds[token]), int(clock.pitches[token])
        if kind == NOTE_ON:
            onsets[pitch] = step
        elif kind == NOTE_OFF:
            onsets.pop(pitch, None)
        elif kind == REST:
            onsets.clear()
    return onsets


def favoured(history, length):
    """NgramBonus: the token after the most recent earlier occurrence of the last `length` tokens, ending before
    they begin; None if there is none."""
    n = len(history)
    for end in range(n - length, length - 1, -1):
        if list(history[end - length:end]) == list(history[n - length:]):
            return int(history[end])
    return None


def oracle(rules, clock, vocab, start, history, logits):
    """``logits`` [V] after the start token and ``rules``, for a row that holds ``history``; (z, failed rule)."""
    z = logits.astype(np.float32).copy()
    z[start] = -np.inf
    history = [int(t) for t in history]
    steps = clock_steps(clock, history) if clock is not None else [0] * (len(history) + 1)
    now = steps[-1]
    for index, rule in enumerate(rules):
        if isinstance(rule, mgf.Forbid):
            z[rule.tokens] = -np.inf
        elif isinstance(rule, mgf.RunLimit):
            started = [int(rule.groups[t]) for t in history if rule.groups[t] >= 0]
            if started:
                last, run = started[-1], 0
                for group in reversed(started):
                    if group != last:
                        break
                    run += 1
                if run >= rule.max_run:
                    z[rule.groups == last] = -np.inf
        elif isinstance(rule, mgf.NgramBonus):
            run = 0
            for i, token in enumerate(history):
                run = run + 1 if favoured(history[:i], rule.length) == token else 0
            following = favoured(history, rule.length)
            if following is not None and run < rule.max_run:
                z[following] += np.float32(rule.bonus)
        elif isinstance(rule, mgf.CloseNotes):
            close_notes(rule, clock, history, steps, z)
        elif isinstance(rule, mgf.Automaton):
            state = rule.start
            for token in history:
                state = int(rule.next[state, token])
            if rule.forbid is not None:
                z[rule.forbid[state]] = -np.inf
            if rule.bias is not None:
                z += rule.bias[state]
        elif isinstance(rule, mgf.BarMask):
            bar = now // clock.steps_per_bar
            masks = rule.masks
            z[masks[bar % len(masks)] if rule.cycle else masks[min(bar, len(masks) - 1)]] = -np.inf
        elif isinstance(rule, mgf.BarBias):
            bar = now // clock.steps_per_bar
            add = rule.bias[bar % len(rule.bias)] if rule.cycle else rule.bias[min(bar, len(rule.bias) - 1)]
            shift = np.float32(0)
            if rule.keep is not None:
                kept = rule.keep & (z > -np.inf)
                if kept.any():
                    lse = lambda x: float(np.logaddexp.reduce(x.astype(np.float64)))  # noqa: E731
                    shift = np.float32(lse(z[kept]) - lse((z + add)[kept]))
            z = z + np.where(rule.keep, add + shift, add) if rule.keep is not None else z + add
        elif isinstance(rule, mgf.BarBudget):
            bar = now // clock.steps_per_bar
            used = sum(1 for token, step in zip(history, steps) if rule.tokens[token] and step // clock.steps_per_bar == bar)
            if used >= rule.limit:
                z[rule.tokens] = -np.inf
        elif isinstance(rule, mgf.TimeLimit):
            time_limit(rule, clock, history, z)
        if not (z > -np.inf).any():
            return z, index
    return z, None


def time_limit(rule, clock, history, z):
    """TimeLimit (mgf.rules): nothing moves past end; with final, the notes closed at end, then final only; with
    within, no token after which the longest moves that fit, the closing and final no longer fit in it (if one does)."""
    steps, bar = clock_steps(clock, history, bars=True)
    now = steps[-1]
    held = set() if rule.held is None else set(np.flatnonzero(rule.held).tolist())
    closable = set(clock.pitches[clock.kinds == NOTE_OFF].tolist())
    notes = set(sounding(clock, history))
    open_ = (notes - held) & closable
    if rule.final is not None and (rule.final in history or now >= rule.end):
        closing = (clock.kinds == NOTE_OFF) & np.isin(clock.pitches, list(open_)) & (rule.final not in history)
        if closing.any():
            z[~closing] = -np.inf
        else:
            z[np.arange(len(z)) != rule.final] = -np.inf
        if rule.final in history and z[rule.final] == -np.inf:  # padding, whatever the rules before said
            z[rule.final] = 0.0
        return
    if rule.final is not None:
        z[rule.final] = -np.inf
    after = np.array([moved(clock, now, bar, token)[0] for token in range(len(z))])
    z[(after > rule.end) & (after != now)] = -np.inf
    sizes = sorted(set(clock.advance[(clock.kinds != BAR) & (clock.kinds != POSITION)].tolist()) - {0})
    if rule.within is None or not sizes:
        return
    left = rule.within - len(history) - 1

    def in_time(token):
        kind, pitch = int(clock.kinds[token]), int(clock.pitches[token])
        count = len(open_)
        if kind == REST:
            count = 0
        elif kind == NOTE_ON and pitch not in notes and pitch in closable and pitch not in held:
            count += 1
        elif kind == NOTE_OFF and pitch in open_:
            count -= 1
        moves, distance = 0, rule.end - after[token]  # the longest move that fits, again and again
        while distance > 0 and any(size <= distance for size in sizes):
            moves, distance = moves + 1, distance - max(size for size in sizes if size <= distance)
        return left >= (moves if distance == 0 else 1 << 20) + count + 1

    timely = np.array([z[token] > -np.inf and in_time(token) for token in range(len(z))])
    if timely.any():
        z[~timely] = -np.inf


def close_notes(rule, clock, history, steps, z):
    """CloseNotes (mgf.rules): the notes sounding after `history`, then its three rules."""
    onsets = sounding(clock, history)
    now = steps[-1]
    if not onsets:
        return
    ages = {pitch: now - onset for pitch, onset in onsets.items()}
    oldest = max(ages.values())
    oldest_pitch = min(pitch for pitch, age in ages.items() if age == oldest)
    rest = clock.kinds == REST
    z[(clock.advance > 0) & (clock.advance > rule.max_steps - oldest) & ~rest] = -np.inf
    if oldest >= rule.max_steps:
        overdue = [pitch for pitch, age in ages.items() if age >= rule.max_steps]
        keep = ((clock.kinds == NOTE_OFF) & np.isin(clock.pitches, overdue)) | rest
        z[~keep] = -np.inf
    if rule.max_polyphony is not None and len(onsets) >= rule.max_polyphony:
        silent_ons = (clock.kinds == NOTE_ON) & ~np.isin(clock.pitches, list(onsets))
        wished = z[silent_ons].astype(np.float64)
        offs = np.flatnonzero((clock.kinds == NOTE_OFF) & (clock.pitches == oldest_pitch))
        with np.errstate(divide="ignore"):
            mass = np.logaddexp.reduce(wished) if wished.size else -np.inf
        if offs.size and np.isfinite(z[offs[0]]):
            z[offs[0]] = np.float32(np.logaddexp(np.float64(z[offs[0]]), mass))
        z[silent_ons] = -np.inf


# -- random vocabularies, clocks and rules ----------------------------------------------------------------------

def random_clock(rng, vocab, bars=True):
    kinds = rng.choice([NOTE_ON, NOTE_ON, NOTE_OFF, NOTE_OFF, SHIFT, SHIFT, REST, HOLD, TokenKind.OTHER]
                       + ([BAR, POSITION] if bars else []), vocab).astype(np.int8)
    pitches = np.where(np.isin(kinds, [NOTE_ON, NOTE_OFF]), rng.integers(60, 66, vocab), -1)
    advance = np.where(np.isin(kinds, [SHIFT, REST, HOLD]), rng.integers(1, 5, vocab), 0)
    advance[kinds == POSITION] = rng.integers(0, 8, (kinds == POSITION).sum())
    advance[rng.random(vocab) < 0.1] = 0
    advance[kinds == BAR] = 0
    return mgf.Clock(kinds, pitches, advance, 0.125, 2, 4)


def random_rules(rng, vocab, clock):
    found = []
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(0, 9))
        if kind == 0:
            found.append(mgf.Forbid(rng.random(vocab) < 0.2))
        elif kind == 1:
            found.append(mgf.RunLimit(rng.integers(-1, 4, vocab), int(rng.integers(1, 4))))
        elif kind == 2:
            found.append(mgf.NgramBonus(int(rng.integers(1, 4)), float(rng.uniform(0, 5)), int(rng.integers(1, 6))))
        elif kind == 3 and clock is not None:
            found.append(mgf.CloseNotes(int(rng.integers(1, 12)), None if rng.random() < 0.3 else int(rng.integers(1, 4))))
        elif kind == 4:
            states = int(rng.integers(1, 4))
            found.append(mgf.Automaton(rng.integers(0, states, (states, vocab)), rng.random((states, vocab)) < 0.15,
                                       rng.normal(0, 1, (states, vocab)).astype(np.float32), int(rng.integers(states))))
        elif kind == 5 and clock is not None:
            found.append(mgf.BarMask(rng.random((int(rng.integers(1, 4)), vocab)) < 0.2, bool(rng.random() < 0.5)))
        elif kind == 6 and clock is not None:
            found.append(mgf.BarBudget(rng.random(vocab) < 0.3, int(rng.integers(0, 4))))
        elif kind == 7 and clock is not None:
            found.append(random_time_limit(rng, clock))
        elif kind == 8 and clock is not None:
            found.append(mgf.BarBias(rng.normal(0, 2, (int(rng.integers(1, 4)), vocab)), bool(rng.random() < 0.5),
                                     None if rng.random() < 0.5 else rng.random(vocab) < 0.5))
    return found


def random_time_limit(rng, clock):
    """A TimeLimit, with a final token (of advance 0), held pitches and a bound on its tokens or not."""
    end = int(rng.integers(0, 60))
    still = np.flatnonzero(clock.advance == 0)
    if rng.random() < 0.5 or not still.size:
        return mgf.TimeLimit(end)
    return mgf.TimeLimit(end, int(rng.choice(still)), None if rng.random() < 0.5 else rng.random(128) < 0.5,
                         None if rng.random() < 0.5 else int(rng.integers(1, 40)))


def _check_against_oracle(rules, clock, vocab, start, histories, rng):
    rows, length = histories.shape
    ruleset = RuleSet(rules, clock, vocab, start, rows, length)
    for n in range(length + 1):
        logits = rng.normal(0, 2, (rows, vocab)).astype(np.float32)
        expected = [oracle(rules, clock, vocab, start, histories[b, :n], logits[b]) for b in range(rows)]
        got = logits.copy()
        failure = ruleset.apply(got)
        first_failed = next(((b, e[1]) for b, e in enumerate(expected) if e[1] is not None), None)
        assert failure == first_failed, (n, failure, first_failed)
        last = rows if failure is None else failure[0]
        for b in range(last):
            np.testing.assert_allclose(got[b], expected[b][0], rtol=1e-6, err_msg=f"row {b} after {n} tokens")
        if clock is not None:
            where = ruleset.clock()
            steps = np.array([clock_steps(clock, histories[b, :n])[-1] for b in range(rows)])
            np.testing.assert_array_equal(where["step"], steps)
            np.testing.assert_array_equal(where["bar"], steps // clock.steps_per_bar)
            np.testing.assert_array_equal(where["beat"], steps // clock.steps_per_beat)
        if n < length:
            ruleset.feed(histories[:, n:n + 1])


@pytest.mark.parametrize("seed", range(60))
def test_rules_match_the_oracle(seed):
    rng = np.random.default_rng(seed)
    vocab = int(rng.integers(3, 30))
    clock = random_clock(rng, vocab) if seed % 4 else None
    rules = random_rules(rng, vocab, clock)
    start = int(rng.integers(vocab))
    alphabet = rng.choice(vocab, size=min(vocab, int(rng.integers(2, 6))), replace=False)  # repeats: n-grams match
    histories = rng.choice(alphabet, (3, int(rng.integers(1, 40)))).astype(np.int32)
    _check_against_oracle(rules, clock, vocab, start, histories, rng)


def test_each_rule_alone_matches_the_oracle():
    """Every kind of rule at least once on its own (the random lists mix them)."""
    rng = np.random.default_rng(7)
    vocab = 24
    clock = random_clock(rng, vocab)
    for rules in ([mgf.Forbid(np.arange(vocab) % 3 == 0)], [mgf.RunLimit(np.arange(vocab) % 4 - 1, 2)],
                  [mgf.NgramBonus(2, 3.0, 3)], [mgf.CloseNotes(5, 2)], [mgf.CloseNotes(3)],
                  [mgf.Automaton(np.roll(np.arange(3), 1)[np.arange(vocab) % 3][None].repeat(3, 0) % 3,
                                 np.eye(3, vocab, dtype=bool), np.ones((3, vocab), np.float32))],
                  [mgf.BarMask(np.eye(2, vocab, dtype=bool), cycle=False)], [mgf.BarBudget(np.arange(vocab) < 12, 2)],
                  [mgf.BarBias(np.arange(3 * vocab, dtype=np.float32).reshape(3, vocab) % 5)],
                  [mgf.BarBias(np.eye(2, vocab, dtype=np.float32) * 4, cycle=False)],
                  [mgf.BarBias(np.arange(2 * vocab, dtype=np.float32).reshape(2, vocab) % 3, keep=np.arange(vocab) < 9)],
                  [mgf.TimeLimit(20)], [mgf.TimeLimit(20, int(np.flatnonzero(clock.advance == 0)[0]))],
                  [mgf.TimeLimit(12, int(np.flatnonzero(clock.advance == 0)[-1]), np.arange(128) % 2 == 0)]):
        histories = rng.integers(0, vocab, (4, 60)).astype(np.int32)
        _check_against_oracle(rules, clock, vocab, vocab - 1, histories, rng)


def test_a_time_limit_with_a_final_token_ends_each_row_exactly_there_with_its_notes_closed():
    """Rows drawn at random under TimeLimit(end, final, held, within) (infilling's end rule): each reaches ``end``
    exactly, closes every note sounding there but the held ones, then chooses only ``final``, by the clock's own
    reckoning; with ``within``, by then, even when the weights would rather not move time."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        vocab = int(rng.integers(8, 30))
        clock = random_clock(rng, vocab, bars=bool(trial % 2))
        clock = mgf.Clock(clock.kinds, clock.pitches, np.where(clock.kinds == SHIFT, 1, clock.advance), 0.125, 2, 4)
        final = vocab - 1  # an OTHER token of advance 0, as infilling's END
        kinds = clock.kinds.copy()
        kinds[final], kinds[-2], kinds[-3] = TokenKind.OTHER, SHIFT, TokenKind.OTHER  # a shift of 1: every end is
        advance = clock.advance.copy()  # reachable; the start token is no note's
        advance[final], advance[-2], advance[-3] = 0, 1, 0
        pitches = np.where(np.isin(kinds, [NOTE_ON, NOTE_OFF]), np.maximum(clock.pitches, 60), -1)
        clock = mgf.Clock(kinds, pitches, advance, 0.125, 2, 4)
        end, held = int(rng.integers(8, 40)), rng.random(128) < 0.3
        sizes = sorted(set(advance[(kinds != BAR) & (kinds != POSITION)].tolist()) - {0})
        moves, left = 0, end
        while left:
            moves, left = moves + 1, left - max(size for size in sizes if size <= left)
        within = moves + 1 + int(rng.integers(0, 20)) if trial % 3 else None  # the fewest it can take, and more
        rows, length = 4, 400
        ruleset = RuleSet([mgf.TimeLimit(end, final, held, within)], clock, vocab, vocab - 3, rows, length)
        history = np.zeros((rows, 0), np.int32)
        stalling = np.where(advance == 0, 8.0, 0.0).astype(np.float32)  # weights that would rather not move time
        for _ in range(length):
            logits = rng.normal(0, 2, (rows, vocab)).astype(np.float32) + (stalling if within else 0)
            assert ruleset.apply(logits) is None
            chosen = np.array([rng.choice(np.flatnonzero(row > -np.inf)) for row in logits], np.int32)
            ruleset.feed(chosen[:, None])
            history = np.concatenate([history, chosen[:, None]], axis=1)
            if (history == final).any(axis=1).all():
                break
        for row in history:
            first = int(np.flatnonzero(row == final)[0])
            assert within is None or first < within, (trial, first, within)
            assert (row[first:] == final).all()
            assert clock_steps(clock, row[:first])[-1] == end
            left = set(sounding(clock, row[:first]))
            assert all(held[p] or not (kinds[(pitches == p)] == NOTE_OFF).any() for p in left), (left, trial)


def test_take_copies_rows_with_their_state():
    rng = np.random.default_rng(3)
    vocab, clock = 16, random_clock(rng, 16, bars=False)
    rules = [mgf.NgramBonus(2, 2.0, 4), mgf.RunLimit(np.arange(16) % 5, 2), mgf.CloseNotes(6, 2)]
    histories = rng.integers(0, 4, (3, 30)).astype(np.int32)
    ruleset = RuleSet(rules, clock, vocab, 15, 3, 40)
    ruleset.feed(histories)
    taken = ruleset.take([2, 0, 2, 1])
    more = rng.integers(0, 4, (4, 5)).astype(np.int32)
    taken.feed(more)
    full = np.concatenate([histories[[2, 0, 2, 1]], more], axis=1)
    logits = rng.normal(0, 1, (4, vocab)).astype(np.float32)
    got = logits.copy()
    taken.apply(got)
    for b in range(4):
        np.testing.assert_allclose(got[b], oracle(rules, clock, vocab, 15, full[b], logits[b])[0], rtol=1e-6)
    assert ruleset.tokens_fed == 30 and taken.tokens_fed == 35  # the original is untouched


def test_a_rule_that_leaves_nothing_is_named():
    ruleset = RuleSet([mgf.Forbid(np.array([True, False, False])), mgf.Forbid(np.array([False, True, False]))],
                      None, 3, 2, 2, 4)
    logits = np.zeros((2, 3), np.float32)
    assert ruleset.apply(logits) == (0, 1)


def test_the_boundary_checks_before_any_work():
    clock = mgf.Clock(np.zeros(4, np.int8), np.full(4, -1), np.zeros(4, np.int32), 0.1, 0, 0)
    with pytest.raises(InputError, match="shape"):
        RuleSet([mgf.Forbid(np.zeros(5, bool))], None, 4, 0, 1, 4)
    with pytest.raises(InputError, match="clock"):
        RuleSet([mgf.TimeLimit(3)], None, 4, 0, 1, 4)
    with pytest.raises(InputError, match="bars"):
        RuleSet([mgf.BarBudget(np.zeros(4, bool), 1)], clock, 4, 0, 1, 4)
    with pytest.raises(InputError, match="final must lie"):
        RuleSet([mgf.TimeLimit(3, 4)], clock, 4, 0, 1, 4)
    moving = mgf.Clock(np.full(4, SHIFT, np.int8), np.full(4, -1), np.ones(4, np.int32), 0.1, 0, 0)
    with pytest.raises(InputError, match="does not move time"):
        RuleSet([mgf.TimeLimit(3, 1)], moving, 4, 0, 1, 4)
    with pytest.raises(InputError, match="Automaton.next"):
        RuleSet([mgf.Automaton(np.zeros((2, 4), np.int32))], None, 5, 0, 1, 4)
    ruleset = RuleSet([mgf.NgramBonus(2, 1.0, 2)], clock, 4, 0, 2, 3)
    with pytest.raises(InputError, match="fed tokens"):
        ruleset.feed(np.array([[0], [4]]))
    with pytest.raises(InputError, match="feed takes"):
        ruleset.feed(np.array([0, 1]))
    with pytest.raises(InputError, match="cannot take"):
        ruleset.feed(np.zeros((2, 4), np.int32))
    with pytest.raises(InputError, match="float32"):
        ruleset.apply(np.zeros((2, 4)))
    with pytest.raises(InputError, match="indices"):
        ruleset.take([2])
    assert ruleset.clock()["bar"].tolist() == [-1, -1]  # a clock without a meter: no bars


@pytest.mark.parametrize("make", [
    lambda: mgf.Forbid(np.zeros((2, 2), bool)), lambda: mgf.Forbid([0, 1]), lambda: mgf.RunLimit([0, -2], 1),
    lambda: mgf.RunLimit([0, 1], 0), lambda: mgf.NgramBonus(0, 1.0, 1), lambda: mgf.NgramBonus(2, float("nan"), 1),
    lambda: mgf.CloseNotes(0), lambda: mgf.CloseNotes(4, 200), lambda: mgf.Automaton([[0, 2]]),
    lambda: mgf.Automaton([[0, 0]], bias=[[0.0, np.inf]]), lambda: mgf.Automaton([[0, 0]], start=1),
    lambda: mgf.BarMask(np.zeros((0, 3), bool)), lambda: mgf.BarBias(np.full((1, 3), np.inf)),
    lambda: mgf.BarBias(np.zeros((0, 3))), lambda: mgf.BarBias(np.zeros((1, 3)), keep=np.ones(4, bool)),
    lambda: mgf.BarBudget(np.zeros(3, bool), -1), lambda: mgf.TimeLimit(-1),
    lambda: mgf.TimeLimit(4, -1), lambda: mgf.TimeLimit(4, 2, np.zeros(12, bool)), lambda: mgf.TimeLimit(4, 2, [0, 1]),
    lambda: mgf.TimeLimit(4, within=3), lambda: mgf.TimeLimit(4, 2, within=0),
])
def test_a_bad_rule_is_a_one_line_error(make):
    with pytest.raises(mgf.MgfError) as error:
        make()
    assert "\n" not in str(error.value) and str(error.value).startswith("mgf.rules.")


def test_rules_are_read_only_copies():
    tokens = np.zeros(3, bool)
    rule = mgf.Forbid(tokens)
    tokens[0] = True
    assert not rule.tokens.any() and not rule.tokens.flags.writeable
