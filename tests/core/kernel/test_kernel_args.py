"""Every entry point of mgf.kernel._native checks its arguments before touching memory (issue 10).

The module is compiled without bounds checks, so a missed check is a crash or silent memory
corruption, not an exception: each case runs in its own interpreter, and the test passes only
if that interpreter printed the expected InputError and exited normally.
``MGF_TEST_KERNEL_DIR`` (set by test_kernel_sanitizers) points the child at another build.
"""

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent(
    """
    import os, mgf
    if os.environ.get("MGF_TEST_KERNEL_DIR"):
        mgf.__path__.insert(0, os.environ["MGF_TEST_KERNEL_DIR"])
    import numpy as np
    from mgf.kernel import _native
    from mgf.contract import bundle
    from mgf.errors import InputError
    HIDDEN = (8, 6)
    tensors = dict(bundle.random_bundle(20, HIDDEN, 4, seed=0).tensors)
    kernel = _native.Kernel(tensors, 20, HIDDEN, 1)
    state = kernel.initial_state(2)
    f32 = lambda *shape: np.zeros(shape, np.float32)
    ROWS, CELLS = [f32(2, 8), f32(2, 14)], [f32(2, 8), f32(2, 6)]
    RULES = lambda rows, tokens: _native.RuleSet([mgf.NgramBonus(2, 1.0, 2), mgf.RunLimit(np.arange(20) % 3, 1)], None,
                                                  20, 19, rows, tokens)
    HISTORY = lambda rows, tokens: np.zeros((rows, tokens), np.int32)
    GREEDY, DRAW = _native.Chooser([], True), _native.Chooser([mgf.TopK(3)], False)
    def changed(**replace):
        return {**tensors, **replace}
    def without(key):
        return {k: v for k, v in tensors.items() if k != key}
    try:
        {call}
    except InputError as error:
        print("InputError:", error)
    else:
        print("no error")
    """
)

CASES = [
    # KernelState accessors: layer index
    ("state.h(2)", "layer 2 is out of range [0, 2)"),
    ("state.h(-1)", "layer -1 is out of range [0, 2)"),
    ("state.c(2)", "layer 2 is out of range [0, 2)"),
    ("state.c(-1)", "layer -1 is out of range [0, 2)"),
    ("state.h(2**40)", "layer 1099511627776 is out of range"),
    # KernelState constructor: owner, batch size, buffers
    ("_native.KernelState(None, 2)", "a kernel state needs the Kernel it belongs to"),
    ("_native.KernelState(object(), 2)", "a kernel state needs the Kernel it belongs to"),
    ("_native.KernelState(kernel, 0)", "batch size must be at least 1, got 0"),
    ("_native.KernelState(kernel, -3)", "batch size must be at least 1, got -3"),
    ("_native.KernelState(kernel, 2, [f32(1, 8), f32(1, 14)], [f32(1, 8), f32(1, 6)])",
     "layer 0's [x | h] rows must have shape (2, 8), got (1, 8)"),
    ("_native.KernelState(kernel, 2, [f32(2, 8), f32(2, 13)], CELLS)", "layer 1's [x | h] rows must have shape (2, 14), got (2, 13)"),
    ("_native.KernelState(kernel, 2, ROWS, [f32(2, 8), f32(2, 5)])", "layer 1's cells must have shape (2, 6), got (2, 5)"),
    ("_native.KernelState(kernel, 2, ROWS, [f32(2, 8)])", "expected 2 arrays of cells (one per layer), got 1"),
    ("_native.KernelState(kernel, 2, ROWS[:1], CELLS)", "expected 2 arrays of [x | h] rows (one per layer), got 1"),
    ("_native.KernelState(kernel, 2, ROWS, None)", "give both the [x | h] rows and the cells, or neither"),
    ("_native.KernelState(kernel, 2, [np.zeros((2, 8)), f32(2, 14)], CELLS)", "layer 0's [x | h] rows must be float32, got float64"),
    ("_native.KernelState(kernel, 2, ROWS, [f32(2, 8), 'abc'])", "layer 1's cells must be a numpy array"),
    ("_native.KernelState(kernel, 2, ROWS, [f32(2, 8), f32(2, 12)[:, ::2]])", "no error"),  # copied, so strides are fine
    # take
    ("state.take([])", "batch size must be at least 1, got 0"),
    ("state.take([[0]])", "state indices must be 1-D"),
    ("state.take([2])", "state indices must lie in [0, 2)"),
    ("state.take([0.5])", "state indices must be integers"),
    # step
    ("kernel.step([1], _native.Kernel(tensors, 20, HIDDEN, 1).initial_state(1))", "this state belongs to another model"),
    ("kernel.step([1, 2], None)", "step needs a state of this kernel, got NoneType"),
    ("kernel.step([1, 2], 'state')", "step needs a state of this kernel, got str"),
    ("kernel.step(np.array([1, 2], np.int32)[::-1], state)", "no error"),
    # Kernel: tensors
    ("_native.Kernel(without('dense.bias'), 20, HIDDEN, 1)", "missing tensor 'dense.bias'"),
    ("_native.Kernel(without('lstm.1.kernel'), 20, HIDDEN, 1)", "missing tensor 'lstm.1.kernel'"),
    ("_native.Kernel(changed(**{'dense.kernel': f32(6, 3)}), 20, HIDDEN, 1)",
     "tensor 'dense.kernel' must have shape (6, 20), got (6, 3)"),
    ("_native.Kernel(changed(**{'lstm.0.recurrent_kernel': f32(8, 8)}), 20, HIDDEN, 1)",
     "tensor 'lstm.0.recurrent_kernel' must have shape (8, 32), got (8, 8)"),
    ("_native.Kernel(changed(embedding=f32(3, 4)), 20, HIDDEN, 1)", "tensor 'embedding' must have shape (20, 4), got (3, 4)"),
    ("_native.Kernel(changed(embedding=f32(20)), 20, HIDDEN, 1)", "tensor 'embedding' must be 2-D, got shape (20,)"),
    ("_native.Kernel(changed(**{'lstm.0.bias': np.zeros(32, np.int64)}), 20, HIDDEN, 1)",
     "tensor 'lstm.0.bias' must hold floats, got int64"),
    ("_native.Kernel(changed(**{'lstm.0.bias': 'x'}), 20, HIDDEN, 1)", "tensor 'lstm.0.bias' must be a numpy array"),
    ("_native.Kernel(None, 20, HIDDEN, 1)", "tensors must be a dict of numpy arrays"),
    # Kernel: sizes and threads
    ("_native.Kernel(tensors, 20, (8, 7), 1)", "tensor 'lstm.1.kernel' must have shape (8, 28), got (8, 24)"),
    ("_native.Kernel(tensors, 20, (8,), 1)", "tensor 'dense.kernel' must have shape (8, 20), got (6, 20)"),
    ("_native.Kernel(changed(**{'lstm.5.bias': f32(3)}), 20, HIDDEN, 1)", "unexpected tensor 'lstm.5.bias'"),
    ("_native.Kernel(tensors, 20, (8, 6, 4), 1)", "missing tensor 'lstm.2.kernel'"),
    ("_native.Kernel(tensors, 21, HIDDEN, 1)", "tensor 'embedding' must have shape (21, 4), got (20, 4)"),
    ("_native.Kernel(tensors, 0, HIDDEN, 1)", "vocabulary size must be at least 1, got 0"),
    ("_native.Kernel(tensors, 20, (), 1)", "the native kernel needs at least one layer"),
    ("_native.Kernel(tensors, 20, (8, 0), 1)", "hidden sizes must be at least 1, got 0"),
    ("_native.Kernel(tensors, 20, (8, 6.5), 1)", "hidden sizes must be integers, got 6.5"),
    ("_native.Kernel(tensors, 20, (8,) * 70, 1)", "tensor 'lstm.1.kernel' must have shape (8, 32), got (8, 24)"),
    ("_native.Kernel(tensors, 20, HIDDEN, 0)", "threads must be at least 1, got 0"),
    ("_native.Kernel(tensors, 20, HIDDEN, -2)", "threads must be at least 1, got -2"),
    ("_native.Kernel(tensors, 20, HIDDEN, 1, 'fp16')", "precision must be one of fp32, bf16, int8; got 'fp16'"),
    ("kernel.initial_state(2**40)", "batch size 1099511627776 is too large"),
    # the generation loop, its rules and its chooser
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 8), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 0, 4, True)",
     "no error"),
    ("_native.generate(kernel, state, f32(3, 20), RULES(2, 8), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 0, 4, True)",
     "generate: logits, history and rules must have 2 rows and logits 20 columns"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(3, 8), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 0, 4, True)",
     "generate: logits, history and rules must have 2 rows and logits 20 columns"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 8), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 0, 9, True)",
     "generate: 9 steps from 0 do not fit a history of 8 tokens"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 8), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 2, 4, True)",
     "generate: the rules were fed 0 tokens, the history holds 2"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 3), GREEDY, np.empty((0, 0)), HISTORY(2, 8), 0, 4, True)",
     "a RuleSet of 3 tokens per row cannot take 4 more after 0"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 8), DRAW, np.zeros((3, 2)), HISTORY(2, 8), 0, 4, True)",
     "generate: the draw needs [4, 2] uniforms"),
    ("_native.generate(kernel, state, f32(2, 20), RULES(2, 8), DRAW, np.ones((4, 2)), HISTORY(2, 8), 0, 4, True)",
     "generate: uniforms must lie in [0, 1)"),
    ("_native.generate(kernel, state, f32(2, 20), _native.RuleSet([], None, 21, 0, 2, 8), GREEDY, np.empty((0, 0)), "
     "HISTORY(2, 8), 0, 4, True)", "generate: the rules were compiled for 21 tokens, the model has 20"),
    ("_native.generate(kernel, _native.Kernel(tensors, 20, HIDDEN, 1).initial_state(2), f32(2, 20), RULES(2, 8), GREEDY, "
     "np.empty((0, 0)), HISTORY(2, 8), 0, 4, True)", "generate: this state belongs to another model"),
    ("_native.RuleSet([mgf.NgramBonus(2, 1.0, 2)], None, 20, 0, 2**19, 2**12)",
     "n-gram bonuses over 524288 rows of 4096 tokens need more than 536870912 table slots; generate fewer rows or tokens at once"),
    ("_native.RuleSet([], None, 20, 20, 2, 8)",
     "a RuleSet needs a vocabulary >= 1, a start token inside it and max_tokens in [0, 2**30]; got 20, 20, 8"),
    ("_native.RuleSet([], None, 20, 0, 0, 8)", "a RuleSet holds 1 to 2**20 rows of a vocabulary of 1 to 2**30 tokens, got 0, 20"),
    ("_native.RuleSet([], None, 20, 0, 2**70, 8)", "a RuleSet holds 1 to 2**20 rows of a vocabulary of 1 to 2**30 tokens, got "
     "1180591620717411303424, 20"),
    ("_native.RuleSet([mgf.NgramBonus(2, 1.0, 2)], None, 20, 0, 1, 2**30)",
     "n-gram bonuses over rows of 1073741824 tokens need more than 536870912 table slots"),
    ("RULES(2, 8).feed(np.array([[1], [-1]]))", "fed tokens must lie in [0, 20)"),
    ("RULES(2, 8).apply(f32(2, 20)[:, ::-1])", "apply takes writable C-contiguous float32 logits [2, 20]"),
    ("RULES(2, 8).take([0, 5])", "take's indices must lie in [0, 2)"),
    ("_native.Chooser([mgf.RepetitionPenalty(1.5)], True).choose(f32(2, 20), np.array([[3], [20]]))",
     "history tokens must lie in [0, 20)"),
    ("_native.Chooser([], True).choose(f32(2, 20)[:, ::2])", "a Chooser takes writable C-contiguous float32 logits"),
]


def run_case(call: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE.replace("{call}", call)],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(), check=False,
    )


@pytest.mark.parametrize("call, message", CASES, ids=[c for c, _ in CASES])
def test_bad_arguments_raise_input_error(call, message):
    done = run_case(call)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    expected = "no error" if message == "no error" else f"InputError: {message}"
    assert expected in done.stdout, done.stdout + done.stderr[-2000:]


def test_many_layers_load_without_a_fixed_limit():
    """More than the 64 layers the fixed-size arrays once held."""
    code = (
        "tensors = dict(bundle.random_bundle(5, (3,) * 70, None, seed=1).tensors)\n"
        "    k = _native.Kernel(tensors, 5, (3,) * 70, 1)\n"
        "    s = k.initial_state(1)\n"
        "    print(k.step([1], s)[0].shape, s.h(69).shape)"
    )
    done = run_case(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(1, 5) (1, 3)" in done.stdout
