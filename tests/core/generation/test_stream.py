"""mgf.stream (issue 21): generate's tokens chunk by chunk, a player's tokens fed in between, closed at any time."""

import collections.abc
import gc
import os
import sys
import threading

import numpy as np
import pytest

import mgf
import mgf.testing
from helpers.controls import plain_model

SHIPPED = ("notes", "midi")
_models: dict = {}


def shipped(name, backend="native"):
    """The shipped model, with its default sampler and constraints (loaded once per module)."""
    if (name, backend) not in _models:
        _models[name, backend] = mgf.load_model(mgf.get_representation(name).default_bundle, backend=backend)
    return _models[name, backend]


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("sampler", ["greedy", "temperature"])
def test_a_stream_gives_the_tokens_generate_gives_for_a_seed_in_chunks(name, backend, sampler):
    model = shipped(name, backend)
    primer = mgf.generate(shipped(name), 9, seed=11)
    expected = mgf.generate(model, 100, sampler=sampler, primer=primer, seed=5)[len(primer):]
    chunks = list(mgf.stream(model, 100, sampler=sampler, primer=primer, seed=5))
    assert [len(chunk) for chunk in chunks] == [16] * 6 + [4]
    assert all(chunk.dtype == np.int32 for chunk in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), expected)


@pytest.mark.parametrize("chunk", [1, 7, 64, 500])
def test_chunk_sets_the_size_of_each_piece(chunk):
    chunks = list(mgf.stream(shipped("midi"), 130, seed=2, chunk=chunk))
    sizes = [len(piece) for piece in chunks]
    assert sizes[:-1] == [chunk] * (len(sizes) - 1) and 1 <= sizes[-1] <= chunk and sum(sizes) == 130
    np.testing.assert_array_equal(np.concatenate(chunks), mgf.generate(shipped("midi"), 130, seed=2))


def test_the_python_loop_streams_what_the_c_loop_streams(monkeypatch):
    expected = np.concatenate(list(mgf.stream(shipped("notes"), 50, seed=8)))
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    np.testing.assert_array_equal(np.concatenate(list(mgf.stream(shipped("notes"), 50, seed=8))), expected)


def test_a_python_policy_streams_what_it_generates_with_fed_tokens_in_between():
    """A third-party policy (no ``greedy``: the Python loop) drawing from ``ctx.rng``; fed tokens reach its history."""
    histories = []

    class Coin(mgf.Policy):
        name = "coin"

        def choose(self, logits, ctx):
            histories.append(ctx.history.shape[1])
            allowed = np.flatnonzero(np.isfinite(logits[0]))
            return np.array([allowed[ctx.rng.integers(len(allowed))]], np.int32)

    class Plugin:
        @staticmethod
        @mgf.hookimpl
        def register_samplers(register):
            register(Coin)

    model = plain_model(hidden=(32,), seed=2, scale=2.0)
    with mgf.testing.registered(Plugin()):
        expected = mgf.generate(model, 40, sampler="coin", seed=7)
        np.testing.assert_array_equal(np.concatenate(list(mgf.stream(model, 40, sampler="coin", seed=7))), expected)
        histories.clear()
        stream = mgf.stream(model, 40, sampler="coin", seed=7, chunk=8)
        first = next(stream)
        second = stream.send([1, 2, 3])
    np.testing.assert_array_equal(first, expected[:8])
    assert histories[8:10] == [11, 12] and len(second) == 8  # the fed tokens come before the next choice


def test_a_stream_that_raised_has_ended():
    class Late(mgf.Policy):
        name = "late-start"

        def choose(self, logits, ctx):
            return np.full(1, 0 if ctx.step < 20 else ctx.representation.start_token, np.int32)

    class Plugin:
        @staticmethod
        @mgf.hookimpl
        def register_samplers(register):
            register(Late)

    with mgf.testing.registered(Plugin()):
        stream = mgf.stream(plain_model(hidden=(32,), seed=2, scale=2.0), sampler="late-start", chunk=16)
        assert next(stream).tolist() == [0] * 16
        with pytest.raises(mgf.PluginError, match="at step 21: chose the start token") as error:
            next(stream)
    assert "\n" not in str(error.value) and stream.closed
    with pytest.raises(StopIteration):
        next(stream)


def test_without_steps_a_stream_goes_on_past_its_first_room_with_generates_tokens():
    """Past the 1,024 tokens a stream without steps makes room for at first, the rules (motifs, hold-limit) are
    rebuilt from the history: the tokens stay generate's."""
    stream = mgf.stream(shipped("notes"), seed=4, chunk=100)
    got = np.concatenate([next(stream) for _ in range(15)])
    stream.close()
    np.testing.assert_array_equal(got, mgf.generate(shipped("notes"), 1500, seed=4))


def test_without_steps_a_stream_stops_at_the_step_limit_saying_how_to_raise_it(monkeypatch):
    monkeypatch.setenv("MGF_MAX_STEPS", "40")
    stream = mgf.stream(shipped("notes"), seed=1)
    assert [len(next(stream)) for _ in range(3)] == [16, 16, 8]
    with pytest.raises(mgf.UsageError, match="steps 41 exceeds the limit 40 .*MGF_MAX_STEPS"):
        next(stream)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_fed_tokens_continue_as_if_the_primer_had_held_them(name, backend):
    """What a fresh generate gives from primer + the stream's tokens so far + the fed ones (greedy: no draws)."""
    model = shipped(name, backend)
    primer, played, more = (mgf.generate(shipped(name), n, seed=seed) for n, seed in ((7, 4), (5, 9), (3, 10)))
    stream = mgf.stream(model, primer=primer, sampler="greedy", chunk=16)
    first = np.concatenate([next(stream), next(stream)])
    stream.feed(played)
    second = next(stream)
    third = stream.send(more)
    fresh = mgf.generate(model, 16, sampler="greedy", primer=np.concatenate([primer, first, played]))
    np.testing.assert_array_equal(second, fresh[-16:])
    fresh = mgf.generate(model, 16, sampler="greedy", primer=np.concatenate([fresh, more]))
    np.testing.assert_array_equal(third, fresh[-16:])
    np.testing.assert_array_equal(stream.tokens, fresh)
    clock = mgf.get_representation(name).clock()
    assert stream.clock["step"] == clock.steps(fresh)[-1]
    assert stream.clock["seconds"] == pytest.approx(clock.steps(fresh)[-1] * clock.step_seconds)


def test_fed_tokens_draw_the_same_in_the_c_and_the_python_loop(monkeypatch):
    def run():
        stream = mgf.stream(shipped("midi"), seed=3, chunk=10)
        out = [next(stream), stream.send([60, 64, 67]), stream.send(np.array([380], np.int64)), next(stream)]
        return np.concatenate(out)

    expected = run()
    monkeypatch.setenv("MGF_PYTHON_LOOP", "1")
    np.testing.assert_array_equal(run(), expected)


@pytest.mark.parametrize("tokens, message", [
    ([5, 10_000], "fed token id 10000 is outside the vocabulary"),
    ([-1], "fed token id -1 is outside the vocabulary"),
    ([[1, 2]], "1-D sequence of integer token ids"),
    ([1.5], "1-D sequence of integer token ids"),
])
def test_a_bad_fed_token_is_a_one_line_input_error_and_feeds_nothing(tokens, message):
    stream = mgf.stream(shipped("notes"), 48, seed=6)
    first = next(stream)
    with pytest.raises(mgf.InputError, match=message) as error:
        stream.feed(tokens)
    assert "\n" not in str(error.value)
    rest = np.concatenate(list(stream))
    np.testing.assert_array_equal(np.concatenate([first, rest]), mgf.generate(shipped("notes"), 48, seed=6))


def test_the_start_token_cannot_be_fed():
    stream = mgf.stream(shipped("notes"), seed=6)
    start = mgf.get_representation("notes").start_token
    with pytest.raises(mgf.InputError, match=f"must not contain the start token {start}"):
        stream.feed([start])


def _threads():
    return len(os.listdir("/proc/self/task")), threading.active_count()


def test_close_mid_stream_ends_it_and_lets_go_of_everything():
    model = shipped("midi")
    next(mgf.stream(model, seed=0))  # the model's own threads, if any, start here
    gc.collect()  # a run refers to itself (its plugins' context calls back into it): the collector frees it
    before, references = _threads(), sys.getrefcount(model)
    stream = mgf.stream(model, seed=0)
    assert isinstance(stream, collections.abc.Generator)
    next(stream)
    assert _threads() == before  # no thread of the stream's own
    assert sys.getrefcount(model) > references
    stream.close()
    gc.collect()
    assert sys.getrefcount(model) == references  # the run, its state, rules and history are gone
    assert _threads() == before
    with pytest.raises(StopIteration):
        next(stream)
    with pytest.raises(mgf.UsageError, match="the stream is closed"):
        stream.feed([1])
    stream.close()  # twice is fine


def test_a_with_block_and_a_loop_left_early_close_the_stream():
    model = shipped("notes")
    gc.collect()
    references = sys.getrefcount(model)
    with mgf.stream(model, seed=0) as stream:
        for count, _ in enumerate(stream):
            if count == 3:
                break
    gc.collect()
    assert stream.closed and sys.getrefcount(model) == references


def test_a_finished_stream_takes_no_more_tokens():
    stream = mgf.stream(shipped("notes"), 20, seed=0)
    assert sum(len(chunk) for chunk in stream) == 20
    with pytest.raises(mgf.UsageError, match="ended after its 20 steps"):
        stream.feed([1])


@pytest.mark.parametrize("name", SHIPPED)
def test_events_are_what_the_decoder_makes_of_the_new_tokens(name):
    representation = mgf.get_representation(name)
    primer = mgf.generate(shipped(name), 12, seed=1)
    tokens = mgf.generate(shipped(name), 90, primer=primer, seed=2)
    decoder = representation.decoder()
    for token in primer.tolist():
        decoder.feed(token)
    expected = [event for token in tokens[len(primer):].tolist() for event in decoder.feed(token)] + decoder.close()
    chunks = list(mgf.stream(shipped(name), 90, primer=primer, seed=2, events=True))
    assert len(chunks) == 6 and all(isinstance(event, mgf.Event) for chunk in chunks for event in chunk)
    assert [event for chunk in chunks for event in chunk] == expected and expected


def test_with_events_feed_gives_the_fed_tokens_events_in_sequence():
    """Fed before the first chunk and between chunks: every event is the decoder's over the whole sequence."""
    representation = mgf.get_representation("midi")
    played = mgf.generate(shipped("midi"), 6, seed=3)
    stream = mgf.stream(shipped("midi"), 64, seed=2, chunk=16, events=True)
    given = stream.feed(played) + next(stream) + stream.send(played) + next(stream)
    assert stream.feed([]) == []
    given += next(stream)  # the last chunk: what still sounds ends
    decoder = representation.decoder()
    expected = [event for token in stream.tokens.tolist() for event in decoder.feed(token)] + decoder.close()
    assert given == expected and len(given) > 4


@pytest.mark.parametrize("arguments, message", [
    ({"num_outputs": 2}, "a stream has one output"),
    ({"sampler": "beam"}, "sampler 'beam' searches whole sequences and cannot stream"),
    ({"chunk": 0}, "chunk must be an integer"),
    ({"steps": 0}, "steps must be a positive integer or None"),
    ({"progress": True}, "no progress bar"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"steps": 10**9}, "exceeds the limit"),
])
def test_bad_arguments_are_one_line_usage_errors(arguments, message):
    with pytest.raises(mgf.UsageError, match=message) as error:
        mgf.stream(shipped("notes"), **arguments)
    assert "\n" not in str(error.value)
