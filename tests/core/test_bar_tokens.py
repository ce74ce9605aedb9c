"""mgf.rules.BarTokens (attribute controls): each bar's listed ids first, the reserved ids nowhere else.

The expected places are found from the rule's docstring and the clock alone (``Clock.steps``: the bar each token
falls in), on a toy representation with bars, BAR and POSITION tokens, under a random-weights model, in both
loops and under beam search.
"""

import numpy as np
import pytest

import mgf
from mgf.kernel._native import RuleSet

TokenKind = mgf.TokenKind

#: the toy layout: 0-3 TIME_SHIFT of 1-4 steps, 4-11 NOTE_ON of 60-67, 12-19 NOTE_OFF of them, 20-25 controls
#: (OTHER, moving no time), 26 BAR, 27-30 POSITION 0, 2, 4, 6, 31 START; 8 steps a bar (2 beats of 2 steps... x4)
SHIFTS, ONS, OFFS, CONTROLS, BAR, POSITIONS, START = range(0, 4), range(4, 12), range(12, 20), range(20, 26), 26, \
    range(27, 31), 31
VOCAB = 32


def toy_clock(meter=True):
    kinds = np.array([TokenKind.TIME_SHIFT] * 4 + [TokenKind.NOTE_ON] * 8 + [TokenKind.NOTE_OFF] * 8
                     + [TokenKind.OTHER] * 6 + [TokenKind.BAR] + [TokenKind.POSITION] * 4 + [TokenKind.OTHER], np.int8)
    pitches = np.array([-1] * 4 + list(range(60, 68)) * 2 + [-1] * 12, np.int16)
    advance = np.array([1, 2, 3, 4] + [0] * 22 + [0, 0, 2, 4, 6] + [0], np.int32)
    if not meter:  # no bars: no BAR or POSITION either
        kinds[BAR:START] = TokenKind.OTHER
        advance[BAR:START] = 0
    return mgf.Clock(kinds=kinds, pitches=pitches, advance=advance, step_seconds=0.125, steps_per_beat=2 if meter else 0,
                     beats_per_bar=4 if meter else 0)


class Barred(mgf.Representation):
    """The toy layout above, with a meter of 8 steps a bar."""

    name = "barred-test"
    meter = True

    def config(self):
        return {}

    @property
    def vocab_size(self):
        return VOCAB

    @property
    def start_token(self):
        return START

    def clock(self):
        return toy_clock(self.meter)

    def read(self, path):
        raise mgf.InputError("reads nothing")

    def write(self, tokens, path, **options):
        raise mgf.InputError("writes nothing")

    def parse_primer(self, text):
        return np.array([int(t) for t in text.split()], np.int32)


class Unbarred(Barred):
    """The same ids, with a clock but no meter."""

    name = "unbarred-test"
    meter = False


class Controls(mgf.Constraint):
    """Built from the public rules: ``Controls.rule`` (a BarTokens, set by each test)."""

    name = "bar-tokens-test"
    rule = None

    def rules(self, ctx):
        return [Controls.rule]


class Plugin:
    @mgf.hookimpl
    def register_representations(self, register):
        register(Barred)
        register(Unbarred)

    @mgf.hookimpl
    def register_constraints(self, register):
        register(Controls)


def _model(make_bundle, representation, seed=3):
    path = make_bundle(VOCAB, (16,), 8, seed=seed, scale=2.0, name=representation)
    loaded = mgf.contract.bundle.read(path)
    loaded.representation = {"name": representation, "config": {}}
    loaded.tensors["dense.bias"][list(CONTROLS)] += 2.0  # a model that would gladly choose controls anywhere
    loaded.tensors["dense.bias"][BAR] += 1.0  # and open bars often
    mgf.contract.bundle.write(loaded, path)
    model = mgf.load_model(path)
    model.defaults = {}
    return model


@pytest.fixture
def model(register_plugin, make_bundle):
    register_plugin(Plugin(), "bar-tokens-plugin")
    return _model(make_bundle, "barred-test")


@pytest.fixture
def c_calls(monkeypatch):
    """How many times the C loop ran."""
    from mgf.kernel import _native

    calls, generate = [], _native.generate
    monkeypatch.setattr(_native, "generate", lambda *args: calls.append(1) or generate(*args))
    return calls


def python_loop(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setenv("MGF_PYTHON_LOOP", "1")
        return mgf.generate(*args, **kwargs)


def generate(model, rule, steps, **kwargs):
    Controls.rule = rule
    return np.atleast_2d(mgf.generate(model, steps, constraints=["bar-tokens-test"], **kwargs))


# -- the oracle: from the docstring and Clock.steps ------------------------------------------------------------

def listed(rule, bar):
    """The ids bar ``bar`` must open with (up to the list's first -1), or []."""
    if bar < rule.first or (rule.stop is not None and bar >= rule.stop):
        return []
    k = bar - rule.first
    row = rule.tokens[k % len(rule.tokens)] if rule.cycle else rule.tokens[min(k, len(rule.tokens) - 1)]
    end = np.flatnonzero(row < 0)
    return row[:end[0] if end.size else len(row)].tolist()


def check_row(rule, row, primed=0, reserved=None):
    """Every bar the row enters after its primer opens with its list; the reserved ids appear nowhere else.  The
    number of bars entered whose list was not empty."""
    clock = toy_clock()
    bars = clock.steps(row)[:-1] // clock.steps_per_bar
    assert (np.diff(bars) >= 0).all()  # this layout never moves back a bar
    reserved = np.isin(np.arange(VOCAB), rule.tokens[rule.tokens >= 0]) if reserved is None else reserved
    forced = np.zeros(len(row), bool)
    checked = 0
    for bar in np.unique(bars):
        first = int(np.flatnonzero(bars == bar)[0])
        if first < primed:
            continue  # the primer's bars: nothing inserted after the fact
        expected = listed(rule, int(bar))
        got = row[first:first + len(expected)].tolist()
        assert got == expected[:len(got)], (int(bar), got, expected, row.tolist())
        forced[first:first + len(expected)] = True
        checked += bool(expected) and first + len(expected) <= len(row)
    stray = ~forced & reserved[row]
    stray[:primed] = False
    assert not stray.any(), (np.flatnonzero(stray), row.tolist())
    return checked


# -- generation ---------------------------------------------------------------------------------------------------

RULES = {
    "one-per-bar": lambda: mgf.BarTokens(np.array([[20], [21], [22]])),
    "padded": lambda: mgf.BarTokens(np.array([[20, 23, -1], [21, -1, -1], [-1, -1, -1], [22, 24, 25]])),
    "no-cycle": lambda: mgf.BarTokens(np.array([[20, 23], [21, -1], [22, 25]]), cycle=False),
    "first-stop": lambda: mgf.BarTokens(np.array([[20, 24], [21, 25]]), first=2, stop=7),
    "first-no-cycle": lambda: mgf.BarTokens(np.array([[20, -1], [21, 23]]), first=1, cycle=False),
    "reserved": lambda: mgf.BarTokens(np.array([[20], [21]]), reserved=np.isin(np.arange(VOCAB), [20, 21, 22, 23])),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_bar_opens_with_its_tokens_and_nowhere_else_in_both_loops(name, model, c_calls, monkeypatch):
    rule = RULES[name]()
    reserved = None if rule.reserved is None else rule.reserved
    entered = 0
    for seed in range(3):
        kwargs = dict(seed=seed, num_outputs=4, temperature=1.0)
        fast = generate(model, rule, 240, **kwargs)
        assert c_calls, "the loop ran in Python, not in C"
        slow = python_loop(monkeypatch, model, 240, constraints=["bar-tokens-test"], **kwargs)
        np.testing.assert_array_equal(fast, slow)
        for row in fast:
            entered += check_row(rule, row, reserved=reserved)
    assert entered > 20  # bars were entered, and lists chosen


def test_without_the_rule_the_model_chooses_controls_anywhere(model):
    """The check can fail: the same model left alone puts control ids in the middle of bars."""
    free = mgf.generate(model, 240, seed=0, num_outputs=4)
    rule = RULES["one-per-bar"]()
    with pytest.raises(AssertionError):
        for row in free:
            check_row(rule, row)


def test_the_stop_bar_and_after_have_no_controls(model):
    rule = mgf.BarTokens(np.array([[20]]), first=1, stop=3)
    rows = generate(model, rule, 300, seed=5, num_outputs=4)
    clock = toy_clock()
    for row in rows:
        bars = clock.steps(row)[:-1] // clock.steps_per_bar
        assert bars.max() >= 4
        assert [int(bars[i]) for i in np.flatnonzero(row == 20)] == [1, 2]  # once in bar 1, once in bar 2
        check_row(rule, row)


def test_a_primer_without_controls_gets_none_after_the_fact(model, c_calls, monkeypatch):
    """The primer's bars 0 and 1 hold no controls: the run goes on in bar 1 freely, then bar 2 opens with its list."""
    rule = mgf.BarTokens(np.array([[20, 23], [21, -1], [22, 24]]))
    primer = np.array([4, 3, 12, 2, 5, 26, 28, 6], np.int32)  # ends in bar 1, at step 10
    clock = toy_clock()
    assert (clock.steps(primer)[:-1] // 8).tolist() == [0] * 6 + [1, 1] and clock.steps(primer)[-1] == 10
    kwargs = dict(seed=2, num_outputs=4, primer=primer)
    fast = generate(model, rule, 200, **kwargs)
    assert c_calls
    np.testing.assert_array_equal(fast, python_loop(monkeypatch, model, 200, constraints=["bar-tokens-test"], **kwargs))
    for row in fast:
        np.testing.assert_array_equal(row[:len(primer)], primer)
        bars = clock.steps(row)[:-1] // 8
        assert bars[len(primer)] == 1 and row[len(primer)] not in (20, 21, 22, 23, 24)
        entered_2 = int(np.flatnonzero(bars == 2)[0])
        assert row[entered_2:entered_2 + 2].tolist() == [22, 24]  # bar 2: tokens[2 % 3]
        check_row(rule, row, primed=len(primer))


def test_a_primer_with_the_controls_of_its_bar_is_counted(model):
    """A primer that opens bar 0 with half its list: the run chooses the rest first, then goes on."""
    rule = mgf.BarTokens(np.array([[20, 23, 24], [21, -1, -1]]))
    rows = generate(model, rule, 100, seed=1, num_outputs=3, primer=np.array([20], np.int32))
    assert (rows[:, 1:3] == [23, 24]).all()
    for row in rows:
        check_row(rule, row)


@pytest.mark.parametrize("branch_factor", [0, 2])
def test_beam_search_keeps_choosing_the_controls(model, branch_factor):
    controls = np.isin(np.arange(VOCAB), CONTROLS)  # all of them: the most probable continuation is not one repeated
    rule = mgf.BarTokens(np.array([[20, 23], [21, -1], [22, 24]]), first=1, reserved=controls)
    kwargs = dict(sampler="beam", beam_size=3, branch_factor=branch_factor, seed=4, num_outputs=3,
                  primer=np.array([4, 1], np.int32))
    rows = generate(model, rule, 60, **kwargs)
    clock = toy_clock()
    entered = 0
    for row in rows:
        assert (clock.steps(row)[:-1] // 8).max() >= 2
        entered += check_row(rule, row, primed=2, reserved=controls)
    assert entered >= 3


def test_a_run_without_bars_refuses_it_in_one_line(register_plugin, make_bundle):
    register_plugin(Plugin(), "bar-tokens-plugin")
    model = _model(make_bundle, "unbarred-test")
    with pytest.raises(mgf.UsageError, match=r"^constraint 'bar-tokens-test' counts bars, .*'unbarred-test' writes no meter$"):
        generate(model, mgf.BarTokens(np.array([[20]])), 10)
    with pytest.raises(mgf.InputError, match="needs bars"):
        RuleSet([mgf.BarTokens(np.array([[20]]))], toy_clock(meter=False), VOCAB, START, 1, 4)
    with pytest.raises(mgf.InputError, match="needs a musical clock"):
        RuleSet([mgf.BarTokens(np.array([[20]]))], None, VOCAB, START, 1, 4)


# -- the RuleSet alone --------------------------------------------------------------------------------------------

def allowed(ruleset, rows=1, logits=None):
    z = np.zeros((rows, VOCAB), np.float32) if logits is None else logits.copy()
    assert ruleset.apply(z) is None
    return [np.flatnonzero(row > -np.inf).tolist() for row in z]


def test_the_forced_token_keeps_its_logit_or_comes_back_from_a_forbid():
    logits = np.arange(VOCAB, dtype=np.float32)[None] / 10
    ruleset = RuleSet([mgf.BarTokens(np.array([[20, 21]]))], toy_clock(), VOCAB, START, 1, 8)
    z = logits.copy()
    ruleset.apply(z)
    assert np.flatnonzero(z[0] > -np.inf).tolist() == [20] and z[0, 20] == np.float32(2.0)
    forbid = np.zeros(VOCAB, bool)
    forbid[[20, 21]] = True
    ruleset = RuleSet([mgf.Forbid(forbid), mgf.BarTokens(np.array([[20, 21]]))], toy_clock(), VOCAB, START, 1, 8)
    z = logits.copy()
    ruleset.apply(z)
    assert np.flatnonzero(z[0] > -np.inf).tolist() == [20] and z[0, 20] == 0.0
    ruleset.feed([[20]])
    assert allowed(ruleset) == [[21]]
    ruleset.feed([[21]])
    assert allowed(ruleset) == [[v for v in range(VOCAB) if v not in (20, 21, START)]]


def test_state_is_per_row_and_take_copies_it():
    rule = mgf.BarTokens(np.array([[20, 21, 22], [23, -1, -1]]))
    ruleset = RuleSet([rule], toy_clock(), VOCAB, START, 3, 20)
    others = [v for v in range(VOCAB) if v not in (20, 21, 22, 23, START)]
    ruleset.feed([[20], [4], [20]])  # row 1 had a note first: bar 0 has passed its list by
    assert allowed(ruleset, 3) == [[21], others, [21]]
    ruleset.feed([[21], [3], [21]])
    taken = ruleset.take([0, 1, 0])  # row 0 mid-list, twice
    assert allowed(taken, 3) == [[22], others, [22]]
    taken.feed([[22], [26], [22]])  # row 1 opens bar 1 (a BAR falls where the row was, in bar 0)
    assert allowed(taken, 3) == [others, [23], others]
    assert allowed(ruleset, 3) == [[22], others, [22]]  # the original is untouched
    taken.feed([[26], [23], [3]])  # row 0's first BAR opens bar 0, where the row is (at step 0) already
    assert allowed(taken, 3) == [others, others, others]
    taken.feed([[26], [0], [0]])  # its second opens bar 1; row 2 goes to step 5, still in bar 0
    assert allowed(taken, 3) == [[23], others, others]


def test_a_list_token_that_moves_time_continues_its_bar_or_gives_way_to_the_next():
    """Defined for any ids: a listed token that moves time within its bar, the list goes on; one that leaves the bar,
    the next bar's list starts from its beginning."""
    rule = mgf.BarTokens(np.array([[3, 20, 3, 21], [22, 23, -1, -1], [20, -1, -1, -1]]),
                         reserved=np.isin(np.arange(VOCAB), [20, 21, 22, 23]))
    ruleset = RuleSet([rule], toy_clock(), VOCAB, START, 1, 20)
    for token in (3, 20, 3):  # at steps 0, 4, 4: the first shift of 4 stays in bar 0, the second leaves it
        assert allowed(ruleset) == [[token]]
        ruleset.feed([[token]])
    assert allowed(ruleset) == [[22]]  # at step 8: bar 1's list from its start (bar 0's 21 is never chosen)
    ruleset.feed([[22]])
    assert allowed(ruleset) == [[23]]
    ruleset.feed([[3]])  # not the listed 23: bar 1's list is passed by; the row goes to step 12
    free = allowed(ruleset)[0]
    assert 23 not in free and 22 not in free and 4 in free
    ruleset.feed([[3]])  # at step 12 (bar 1), to 16
    assert allowed(ruleset) == [[20]]


# -- checks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error", [
    (lambda: mgf.BarTokens(np.zeros((0, 2), int)), mgf.PluginError),
    (lambda: mgf.BarTokens(np.array([20, 21])), mgf.PluginError),
    (lambda: mgf.BarTokens(np.array([[20.0]])), mgf.PluginError),
    (lambda: mgf.BarTokens(np.array([[20, -2]])), mgf.PluginError),
    (lambda: mgf.BarTokens(np.array([[20]]), first=-1), mgf.UsageError),
    (lambda: mgf.BarTokens(np.array([[20]]), first=3, stop=3), mgf.UsageError),
    (lambda: mgf.BarTokens(np.array([[20]]), stop=0), mgf.UsageError),
    (lambda: mgf.BarTokens(np.array([[20]]), first=1.5), mgf.UsageError),
    (lambda: mgf.BarTokens(np.array([[20]]), reserved=np.zeros((2, VOCAB), bool)), mgf.PluginError),
    (lambda: mgf.BarTokens(np.array([[20]]), reserved=np.zeros(VOCAB, int)), mgf.PluginError),
])
def test_a_bad_rule_is_a_one_line_error(make, error):
    with pytest.raises(error) as raised:
        make()
    assert "\n" not in str(raised.value) and str(raised.value).startswith("mgf.rules.BarTokens: ")


@pytest.mark.parametrize("rule, message", [
    (lambda: mgf.BarTokens(np.array([[20, VOCAB]])), r"BarTokens.tokens must lie in \[-1, 32\)"),
    (lambda: mgf.BarTokens(np.array([[20, START]])), "must not hold the start token 31"),
    (lambda: mgf.BarTokens(np.array([[20, -1, 21]])), "only -1s after a -1"),
    (lambda: mgf.BarTokens(np.array([[20], [-1], [21]])), None),  # an empty list is fine
    (lambda: mgf.BarTokens(np.array([[-1, 21]])), "only -1s after a -1"),
    (lambda: mgf.BarTokens(np.array([[20]]), reserved=np.zeros(VOCAB - 1, bool)), r"BarTokens.reserved must have shape \[32\]"),
    (lambda: mgf.BarTokens(np.array([[2**31 - 1]])), r"must lie in \[-1, 32\)"),
])
def test_the_vocabulary_checks(rule, message):
    if message is None:
        RuleSet([rule()], toy_clock(), VOCAB, START, 1, 4)
        return
    with pytest.raises(mgf.InputError, match=message):
        RuleSet([mgf.Forbid(np.zeros(VOCAB, bool)), rule()], toy_clock(), VOCAB, START, 1, 4)


def test_a_plugins_bad_table_is_its_constraints_bug(model):
    with pytest.raises(mgf.PluginError, match=r"bar-tokens-test.*BarTokens.tokens must lie in \[-1, 32\)"):
        generate(model, mgf.BarTokens(np.array([[40]])), 10)


def test_the_rule_reads_only_its_copies():
    tokens = np.array([[20, 21]])
    rule = mgf.BarTokens(tokens, stop=np.int64(4), cycle=0)
    tokens[0, 0] = 22
    assert rule.tokens.tolist() == [[20, 21]] and not rule.tokens.flags.writeable
    assert rule.stop == 4 and type(rule.stop) is int and rule.cycle is False
    assert mgf.BarTokens in mgf.rules.RULES and "BarTokens" in mgf.__all__ and mgf.rules.BarTokens is mgf.BarTokens
