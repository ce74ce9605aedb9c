"""The generation loop, owned by the core: priming, stepping, constraints, the sampler's choice, and the checks.

Every value crossing from plugin code is checked here: a model's logits must be float32
``[B, V]`` and finite, its state must keep the batch size, a sampler's choice must be int
``[B]`` inside the vocabulary and allowed by the constraints (never the start token).  A
violation is a :class:`PluginError` naming the plugin and the step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mgf.contract import options as opts
from mgf.contract import registry
from mgf.contract.boundary import Origin, guard, origin_of
from mgf.contract.constraint import Constraint
from mgf.contract.context import Context
from mgf.errors import InputError, PluginError, UsageError
from mgf.contract.model import Model, State
from mgf.contract.sampler import Sampler


class Run:
    """One call of :func:`mgf.generate`: the chosen plugins with their options, the primer, the rng."""

    def __init__(
        self,
        model: Model,
        sampler: str,
        constraints: Sequence[str],
        given: Mapping[str, Any],
        primer: np.ndarray,
        rng: np.random.Generator,
        num_outputs: int,
        bar=None,
    ) -> None:
        if model.representation is None:
            raise InputError("the model has no representation; load it with mgf.load_model")
        self.model, self.representation, self.rng, self.bar = model, model.representation, rng, bar
        self.primer, self.num_outputs = primer, num_outputs
        self.vocab_size = int(model.vocab_size)
        self.start = int(self.representation.start_token)
        self.backend = origin_of(model)
        if isinstance(constraints, str):
            constraints = [constraints]
        sampler_entry = registry.entry("samplers", sampler)
        constraint_entries = [registry.entry("constraints", name) for name in constraints]
        if len({e.origin.name for e in constraint_entries}) < len(constraint_entries):
            raise UsageError("each constraint may be given once (its options apply to it as a whole)")
        owners = {f"sampler {sampler!r}": sampler_entry.cls.options}
        owners.update({f"constraint {e.origin.name!r}": e.cls.options for e in constraint_entries})
        shares = opts.split(given, owners)
        labels = list(owners)
        resolved = [opts.resolve(owners[label], shares[label], label) for label in labels]
        self.sampler: Sampler = sampler_entry.cls()
        self.sampler_origin = sampler_entry.origin
        self.ctx = Context(self, resolved[0])
        self.constraints: list[tuple[Constraint, Context, Origin]] = [
            (entry.cls(), Context(self, values), entry.origin) for entry, values in zip(constraint_entries, resolved[1:])
        ]

    # -- the loop --------------------------------------------------------------------------

    def generate(self, steps: int) -> np.ndarray:
        """``[num_outputs, steps]`` new tokens."""
        for constraint, ctx, _ in self.constraints:
            ctx.history = np.broadcast_to(self.primer, (self.num_outputs, len(self.primer)))
            constraint.prepare(ctx)
        if self.sampler.search is not None:
            return self._search(steps)
        native = self._native_plan()
        if native is not None:
            return self._native(steps, *native)
        rows, P = self.num_outputs, len(self.primer)
        history = np.empty((rows, P + steps), np.int32)
        history[:, :P] = self.primer
        logits, state = self.prime(rows)
        ctx = self.ctx
        for i in range(steps):
            ctx.step, ctx.history = i, history[:, : P + i]
            forbidden = np.isneginf(logits)  # before choose, which may edit logits
            chosen = self.sampler.choose(logits, ctx)
            history[:, P + i] = self._check_choice(chosen, forbidden, i)
            if i + 1 < steps:
                logits, state = self.step(history[:, P + i].copy(), state)
                logits = self._constrain_rows(logits, history[:, : P + i + 1], i + 1)
        return history[:, P:]

    # -- the loop in C, for built-in policies and constraints on a model that offers it ----------

    def _native_plan(self):
        """``(policy, constraints)`` when every plugin of this run can run inside the kernel's C loop, else None.

        Only built-in plugins take part (``_native`` and ``_native_kernel`` are private to mgf):
        third-party policies, constraints and backends keep the Python loop, which gives the
        same tokens (``MGF_PYTHON_LOOP=1`` forces it, for tests and comparisons).
        """
        if os.environ.get("MGF_PYTHON_LOOP") == "1" or getattr(self.model, "_native_kernel", None) is None:
            return None
        plugins = [(self.sampler, self.ctx, self.sampler_origin)] + self.constraints
        if not all(origin.distribution == "mgf" and hasattr(plugin, "_native") for plugin, _, origin in plugins):
            return None
        natives = [constraint._native(ctx) for constraint, ctx, _ in self.constraints]
        stateful = [c["kind"] for c in natives if c["kind"] != "mask"]
        if len(stateful) != len(set(stateful)):  # the C loop keeps one state of each kind (no-repeat and hold-limit)
            return None
        return self.sampler._native(self.ctx), natives

    #: steps per call of the C loop: between calls the progress bar moves
    NATIVE_CHUNK = 256

    def _native(self, steps: int, policy: dict, constraints: list[dict]) -> np.ndarray:
        from mgf.kernel import _native

        rows, vocab, P = self.num_outputs, self.vocab_size, len(self.primer)
        kind_ids = {"mask": 0, "no_repeat": 1, "close_notes": 2, "motifs": 3}  # sample.h
        kinds = np.array([kind_ids[c["kind"]] for c in constraints], np.int32)
        masks = np.zeros((len(constraints), vocab), np.uint8)
        pitches = np.full(vocab, -1, np.int32)
        max_repeats, motif_length, motif_bonus, motif_max_run, capacity = 1, 1, 0.0, 1, 1
        motif_run = np.zeros(rows, np.int32)
        close = np.zeros(4, np.int32)
        onsets, now = np.full((rows, 128), -1, np.int64), np.zeros(rows, np.int64)
        for index, c in enumerate(constraints):
            if c["kind"] == "mask":
                masks[index] = c["mask"]
            elif c["kind"] == "no_repeat":
                pitches[:], max_repeats = c["pitches"], c["max_repeats"]
            elif c["kind"] == "close_notes":
                close[:] = c["shift0"], c["shift_end"], c["max_steps"], c["max_polyphony"]
                onsets[:], now[:] = c["onsets"], c["now"]
            else:
                motif_length, motif_bonus, motif_max_run, motif_run[:] = c["length"], c["bonus"], c["max_run"], c["run"]
                capacity = 1 << (2 * (P + steps) + 1).bit_length()  # a power of two above twice the tokens of a row
        keys, ends, indexed = np.zeros((rows, capacity), np.uint64), np.zeros((rows, capacity), np.int32), np.zeros(rows, np.int32)
        last_pitch, run = _primer_runs(self.primer, pitches, rows)
        temperature = policy["policy"] == "temperature"
        options = (policy.get("temperature", 1.0), policy.get("top_k", 0), policy.get("top_p", 1.0))
        logits, state = self._prime_raw(rows)
        logits = np.ascontiguousarray(logits)
        history = np.empty((rows, P + steps), np.int32)
        history[:, :P] = self.primer
        kernel = getattr(self.model, "_native_kernel")  # noqa: B009 - not a declared attribute of Model (mypy)
        for first in range(0, steps, self.NATIVE_CHUNK):
            count = min(self.NATIVE_CHUNK, steps - first)
            uniforms = self.rng.random((count, rows)) if temperature else np.empty((0, 0))
            failure = _native.generate(kernel, state, logits, self.start, int(temperature), *options,
                                     kinds, masks, pitches, max_repeats, last_pitch, run, close, onsets, now,
                                     motif_length, motif_bonus, motif_max_run, motif_run, keys, ends, indexed, uniforms,
                                     history, P + first, count,
                                     first + count < steps)
            if failure is not None:
                step, row, index = failure
                if index == -2:
                    raise PluginError(f"{self._backend_name('step')}: returned non-finite logits (NaN or infinity)")
                which = f" for output {row + 1}" if rows > 1 else ""
                name = self.constraints[index][2].name
                raise InputError(f"constraint {name!r} leaves no allowed token{which} at step {first + step + 1}")
            if self.bar is not None:
                self.bar.update(count)
        return history[:, P:]

    def _search(self, steps: int) -> np.ndarray:
        self.ctx.step = 0
        out = self.sampler.search(_CheckedModel(self), self.ctx, steps)  # type: ignore[misc]
        where = self.sampler_origin.describe("search")
        if not isinstance(out, np.ndarray) or out.dtype.kind not in "iu" or out.shape != (self.num_outputs, steps):
            shape = list(getattr(out, "shape", [])) or type(out).__name__
            raise PluginError(f"{where}: returned {shape}, expected int [{self.num_outputs}, {steps}]")
        self._check_tokens(out, where)
        return out.astype(np.int32)

    # -- what searches call through their Context ------------------------------------------

    def prime(self, rows: int) -> tuple[np.ndarray, State]:
        logits, state = self._prime_raw(rows)
        history = np.broadcast_to(self.primer, (rows, len(self.primer)))
        return self._constrain_rows(logits, history, 0), state

    def initial_state(self, rows: int) -> State:
        with guard(self.backend, "initial_state"):
            state = self.model.initial_state(rows)
        self._check_state(state, rows, "initial_state")
        return state

    def _prime_raw(self, rows: int) -> tuple[np.ndarray, State]:
        """The model's own logits after the start token and the primer, and the state."""
        state = self.initial_state(rows)
        tokens = np.concatenate([[self.start], self.primer]).astype(np.int32)
        if type(self.model).prime is Model.prime:  # the contract's default steps: so do we, checking every step
            for token in tokens:
                logits, state = self.step(np.full(rows, token, np.int32), state)
            return logits, state
        with guard(self.backend, "prime"):
            logits, state = self.model.prime(np.ascontiguousarray(np.broadcast_to(tokens, (rows, len(tokens)))), state)
        self._check_output(logits, state, rows, "prime")
        if self.bar is not None:
            self.bar.update(len(tokens))
        return logits, state

    def search_prime(self, rows: int) -> tuple[np.ndarray, State]:
        logits, state = self.prime(rows)
        return logits, _CheckedState(state, self)

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        rows = len(tokens)
        with guard(self.backend, "step"):
            logits, state = self.model.step(tokens, state)
        self._check_output(logits, state, rows, "step")
        if self.bar is not None:
            self.bar.update()
        return logits, state

    def _check_output(self, logits: Any, state: Any, rows: int, call: str) -> None:
        """What the model's ``step`` or ``prime`` returned: finite float32 logits ``[rows, V]`` and a state of ``rows``."""
        if not (isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.shape == (rows, self.vocab_size)):
            got = f"{getattr(logits, 'dtype', type(logits).__name__)} {list(getattr(logits, 'shape', []))}"
            raise PluginError(f"{self._backend_name(call)}: returned logits {got}, expected float32 [{rows}, {self.vocab_size}]")
        if not np.isfinite(logits).all():
            raise PluginError(f"{self._backend_name(call)}: returned non-finite logits (NaN or infinity)")
        self._check_state(state, rows, call)

    def constrain(self, logits: np.ndarray, generated: np.ndarray) -> np.ndarray:
        generated = np.asarray(generated, dtype=np.int32)
        history = np.concatenate([np.broadcast_to(self.primer, (len(generated), len(self.primer))), generated], axis=1)
        return self._constrain_rows(logits, history, generated.shape[1])

    # -- checks ----------------------------------------------------------------------------

    def _constrain_rows(self, logits: np.ndarray, history: np.ndarray, step: int) -> np.ndarray:
        if not logits.flags.writeable:
            logits = logits.copy()
        logits[:, self.start] = -np.inf
        for constraint, ctx, origin in self.constraints:
            ctx.step, ctx.history = step, history
            out = constraint.apply(logits, ctx)
            if not (isinstance(out, np.ndarray) and out.shape == logits.shape):
                raise PluginError(f"{origin.describe('apply')}: returned {type(out).__name__}, expected logits {list(logits.shape)}")
            if np.isnan(out).any() or np.isposinf(out).any():
                raise PluginError(f"{origin.describe('apply')}: returned NaN or +inf logits at step {step}")
            logits = out.astype(np.float32, copy=False)
            empty = ~(logits > -np.inf).any(axis=1)
            if empty.any():
                row = int(np.flatnonzero(empty)[0])
                which = f" for output {row + 1}" if len(logits) > 1 else ""
                raise InputError(f"constraint {origin.name!r} leaves no allowed token{which} at step {step + 1}")
        return logits

    def _check_choice(self, chosen: Any, forbidden: np.ndarray, step: int) -> np.ndarray:
        where = f"{self.sampler_origin.describe('choose')} at step {step + 1}"
        rows = len(forbidden)
        if not isinstance(chosen, np.ndarray) or chosen.dtype.kind not in "iu" or chosen.shape != (rows,):
            shape = list(getattr(chosen, "shape", [])) or type(chosen).__name__
            raise PluginError(f"{where}: returned {shape}, expected int [{rows}]")
        self._check_tokens(chosen, where)
        if forbidden[np.arange(rows), chosen].any():
            raise PluginError(f"{where}: chose a token that the start token rule or a constraint forbids")
        return chosen

    def _check_tokens(self, tokens: np.ndarray, where: str) -> None:
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise PluginError(f"{where}: chose a token outside [0, {self.vocab_size})")
        if (tokens == self.start).any():
            raise PluginError(f"{where}: chose the start token {self.start}")

    def _check_state(self, state: Any, rows: int, call: str) -> None:
        size = getattr(state, "batch_size", None)
        if size != rows:
            raise PluginError(f"{self._backend_name(call)}: returned a state of {size} rows, expected {rows}")

    def _backend_name(self, call: str) -> str:
        return self.backend.describe(call) if self.backend is not None else f"model {type(self.model).__name__} ({call})"


def _primer_runs(primer: np.ndarray, pitches: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``no-repeat``'s per-row state after the primer: the pitch started last, and how many times in a row."""
    last, run = -1, 0
    for pitch in pitches[primer]:
        if pitch >= 0:
            last, run = int(pitch), (run + 1 if pitch == last else 1)
    return np.full(rows, last, np.int32), np.full(rows, run, np.int32)


class _CheckedModel(Model):
    """The model as a search sees it: ``step`` and ``initial_state`` go through the run's checks; ``take`` is checked too."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.representation = run.representation

    @property
    def vocab_size(self) -> int:
        return self._run.vocab_size

    def initial_state(self, batch_size: int) -> State:
        return _CheckedState(self._run.initial_state(batch_size), self._run)

    def step(self, tokens, state):
        inner = state.inner if isinstance(state, _CheckedState) else state
        logits, inner = self._run.step(np.ascontiguousarray(tokens, dtype=np.int32), inner)
        return logits, _CheckedState(inner, self._run)


class _CheckedState(State):
    __slots__ = ("inner", "_run")

    def __init__(self, inner: State, run: Run) -> None:
        self.inner, self._run = inner, run

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    def take(self, indices) -> State:
        indices = np.asarray(indices)
        with guard(self._run.backend, "take"):
            taken = self.inner.take(indices)
        self._run._check_state(taken, len(indices), "take")
        return _CheckedState(taken, self._run)
