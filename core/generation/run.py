"""The generation loop, owned by the core: priming, stepping, constraints, the sampler's choice, and the checks.

Two loops give the same tokens for a seed: the Python loop (a step, then the rules of
``mgf.kernel._native.RuleSet``, the constraints that ``apply``, the processors and the choice of
``Chooser``, or the policy's ``choose``) and the C loop (``mgf.kernel._native.generate``: the
same C functions for every step, without the GIL), which runs when the model offers its
``kernel``, every constraint is made of rules and the policy sets ``greedy``.

Every value crossing from plugin code is checked here: a model's logits must be float32
``[B, V]`` and finite, its state must keep the batch size, a sampler's choice must be int
``[B]`` inside the vocabulary and allowed by the constraints (never the start token).  A
violation is a :class:`PluginError` naming the plugin and the step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from mgf.contract import registry
from mgf.contract.boundary import Origin, guard, origin_of
from mgf.contract.clock import clock_of
from mgf.contract.constraint import Constraint, implements
from mgf.contract.context import Context
from mgf.errors import InputError, PluginError, UsageError
from mgf.contract.model import Model, State
from mgf.contract.sampler import Sampler
from mgf.contract.controls import Conditioned, control_margin, frame
from mgf.contract.infill import Infilling
from mgf.generation.plan import Plan, infill_tokens
from mgf.generation.processors import checked as checked_processors
from mgf.generation.rules import RULES, BarBias, BarBudget, BarMask, BarTokens, Forbid, TimeLimit

#: who the infilling rules (the framing ids forbidden, the gap's end) are in messages
_INFILL = Origin("constraints", "infill", "mgf", "mgf-music", "", builtin=True)
#: who a conditioned model's controls (their ids only at bar starts) are in messages
_CONTROLS = Origin("constraints", "controls", "mgf", "mgf-music", "", builtin=True)


class Run:
    """One call of :func:`mgf.generate`: the chosen plugins with their options, the primer, the rng."""

    def __init__(self, model: Model, plan: Plan, bar=None) -> None:
        """The plugins ``plan`` names, made with their resolved options (the plan has checked them all)."""
        if model.representation is None:
            raise InputError("the model has no representation; load it with mgf.load_model")
        self.model, self.representation, self.plan, self.bar = model, model.representation, plan, bar
        self.rng = np.random.default_rng(plan.seed)
        self.primer, self.num_outputs = np.array(plan.primer, np.int32), plan.rows
        self.music_primer = self.primer  # the caller's; ``primer`` is what the model reads (a conditioned one's controls in it)
        self.conditioned: Conditioned | None = self.representation if isinstance(self.representation, Conditioned) else None
        self.framed = None
        if self.conditioned is not None:
            gap = plan.gap
            after = None if gap is None or gap.end is None else np.array(gap.after, np.int32)
            self.framed = frame(self.conditioned, self.primer, plan.controls, after, None if gap is None else gap.end)
            self.primer = self.framed.before
        self.vocab_size = int(model.vocab_size)
        self.start = int(self.representation.start_token)
        self.backend = origin_of(model)
        sampler_entry = registry.entry("samplers", plan.sampler)
        self.sampler: Sampler = sampler_entry.cls()
        self.sampler_origin = sampler_entry.origin
        self.ctx = self._context(dict(plan.options[0]))
        try:  # the sampler's own processors (its options), then the caller's, in the order applied
            own = checked_processors(self.sampler.processors(self.ctx))
        except UsageError as error:
            raise PluginError(f"{self.sampler_origin.describe('processors')}: {error}") from None
        self.processors = [*own, *plan.processors]
        entries = [registry.entry("constraints", name) for name in plan.constraints]
        self.constraints: list[tuple[Constraint, Context, Origin]] = [
            (entry.cls(), self._context(dict(values)), entry.origin) for entry, values in zip(entries, plan.options[1:])
        ]

    def _context(self, options: Mapping[str, Any]) -> Context:
        """A plugin's view of this run: its data and the two calls a search makes, not the run itself."""
        return Context(rng=self.rng, options=options, representation=self.representation, num_outputs=self.num_outputs,
                       history=self.primer[None, :], prime=self.search_prime, constrain=self.constrain)

    # -- the loop --------------------------------------------------------------------------

    def generate(self, steps: int) -> np.ndarray:
        """``[num_outputs, steps]`` new tokens; with the plan's gap, fewer once every row has chosen END.

        A conditioned model's control tokens are chosen too (as many more steps as they take) and left out of what is
        returned: ``steps`` tokens of music per row, or with a gap, each row's up to END, padded with END."""
        conditioned = self.conditioned
        if self.framed is None or conditioned is None:
            return self._generate(steps)
        music = steps
        if self.plan.gap is None:
            steps += control_margin(conditioned, steps)
        rows = [conditioned.music(row) for row in self._generate(steps, music)]
        if self.plan.gap is None:
            return np.stack([row[:music] for row in rows]).astype(np.int32)
        end, longest = infill_tokens(self.representation).end, max(len(row) for row in rows)
        return np.stack([np.pad(row, (0, longest - len(row)), constant_values=end) for row in rows]).astype(np.int32)

    def _generate(self, steps: int, music: int | None = None) -> np.ndarray:
        """``generate``'s tokens, control ids included; with ``music``, it stops once every row has that many others."""
        from mgf.kernel import _native  # on first use: ``import mgf`` stays light

        self._prepare(steps)
        if self.sampler.search is not None:
            return self._search(steps)
        rows, P = self.num_outputs, len(self.primer)
        history = np.empty((rows, P + steps), np.int32)
        history[:, :P] = self.primer
        rules = self._ruleset(history[:, :P], P + steps)
        chooser = _native.Chooser(self.processors, bool(self.greedy))
        logits, state = self._prime_raw(rows)
        end = None if self.plan.gap is None else infill_tokens(self.representation).end
        chunk = self.CHUNK if end is None else self.GAP_CHUNK
        for first in range(0, steps, chunk):
            count = min(chunk, steps - first)
            logits, state = self.extend(logits, state, rules, chooser, history, P + first, count, first + count < steps)
            if end is not None and (history[:, P:P + first + count] == end).any(axis=1).all():
                return history[:, P:P + first + count]
            if music is not None and self.conditioned is not None and \
                    (~self.conditioned.is_control(history[:, P:P + first + count])).sum(axis=1).min() >= music:
                return history[:, P:P + first + count]
        return history[:, P:]

    def _prepare(self, steps: int) -> None:
        """Each constraint prepared, then its rules gathered (``self.rules``, ``self.owners``: whose each rule is) or it
        joins the constraints that ``apply`` (``self.applying``); the sampler's ``greedy`` (``self.greedy``)."""
        from mgf.kernel import _native

        self.steps, self.rules, self.owners, self.applying = steps, [], [], []
        self.greedy = getattr(self.sampler, "greedy", None) if self.sampler.search is None else None
        self.clock = clock_of(self.representation)
        primer = np.broadcast_to(self.primer, (self.num_outputs, len(self.primer)))
        where = None  # where the token after the primer falls
        if self.clock is not None:
            timing = _native.RuleSet([], self.clock, self.vocab_size, self.start, len(primer), len(self.primer))
            timing.feed(primer)
            where = timing.clock()
        for constraint, ctx, origin in self.constraints:
            ctx.history, ctx.clock = primer, where
            constraint.prepare(ctx)
            if not implements(type(constraint), "rules"):
                self.applying.append((constraint, ctx, origin))
                continue
            found = constraint.rules(ctx)
            found = list(found) if isinstance(found, (list, tuple)) else found
            if not isinstance(found, list) or not all(isinstance(rule, RULES) for rule in found):
                raise PluginError(f"{origin.describe('rules')}: returned {found!r:.80}, expected a list of mgf.rules")
            for rule in found:
                if rule.needs_clock and self.clock is None:
                    raise UsageError(f"constraint {origin.name!r} needs the musical clock, and representation "
                                     f"{self.representation.name!r} has none (Representation.clock)")
                if isinstance(rule, (BarMask, BarBias, BarBudget, BarTokens)) and not self.clock.steps_per_bar:
                    raise UsageError(f"constraint {origin.name!r} counts bars, and representation "
                                     f"{self.representation.name!r} writes no meter")
            try:  # the rules alone, against the vocabulary and the clock: a bad one is its constraint's bug
                _native.RuleSet(found, self.clock, self.vocab_size, self.start, 1, 0)
            except InputError as error:
                raise PluginError(f"{origin.describe('rules')}: {error}") from None
            self.rules += found
            self.owners += [origin] * len(found)
        infilling = self._infill_rules()  # at the gap's end, only its END
        self.rules += infilling
        self.owners += [_INFILL] * len(infilling)
        if self.framed is not None and self.conditioned is not None:  # last: a bar's controls, whatever came before
            reserved = self.conditioned.is_control(np.arange(self.vocab_size))
            self.rules.append(BarTokens(self.framed.table, self.framed.first, self.framed.stop, True, reserved))
            self.owners.append(_CONTROLS)

    def _ruleset(self, history: np.ndarray, max_tokens: int):
        """The run's rules with a state per row of ``history``, fed it."""
        from mgf.kernel import _native

        rules = _native.RuleSet(self.rules, self.clock, self.vocab_size, self.start, len(history), max_tokens)
        rules.feed(history)
        return rules

    #: steps per chunk of the loop: between chunks the progress bar moves (the Python loop moves it every step)
    CHUNK = 256
    #: steps per chunk when filling a gap: after each, the run stops if every row has ended
    GAP_CHUNK = 32

    def _infill_rules(self) -> list:
        """An infilling model's framing ids, never chosen; with the plan's gap, its END only where the gap ends, and by
        the run's last step."""
        base = self.conditioned.base if self.conditioned is not None else self.representation
        if not isinstance(base, Infilling) and self.plan.gap is None:
            return []
        ids, gap = infill_tokens(self.representation), self.plan.gap
        framing = np.zeros(self.vocab_size, bool)
        framing[[ids.suffix, ids.prefix, ids.middle] + ([ids.end] if gap is None else [])] = True
        rules: list = [Forbid(framing)]
        if gap is not None and gap.end is not None:
            held = np.zeros(128, bool)
            held[list(gap.held)] = True
            rules.append(TimeLimit(gap.end, ids.end, held, within=len(self.primer) + self.steps))
        return rules

    def _no_token(self, row: int, rows: int, step: int, rule: int) -> None:
        """The error for a row that rule ``rule`` (of ``self.rules``; -1: the start token rule) left with no token."""
        which = f" for output {row + 1}" if rows > 1 else ""
        if rule < 0:
            raise InputError(f"no token but the start token is left{which} at step {step + 1}")
        raise InputError(f"constraint {self.owners[rule].name!r} leaves no allowed token{which} at step {step + 1}")

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
        return self.constrain(logits, np.empty((rows, 0), np.int32)), state

    def initial_state(self, rows: int) -> State:
        with guard(self.backend, "initial_state"):
            state = self.model.initial_state(rows)
        self._check_state(state, rows, "initial_state")
        return state

    def _prime_raw(self, rows: int) -> tuple[np.ndarray, State]:
        """The model's own logits after the start token and the primer (a gap's prompt), and the state."""
        prompt = self.primer if self.plan.gap is None else self.plan.gap.prompt
        tokens = np.concatenate([[self.start], prompt]).astype(np.int32)
        return self.prime_from(np.broadcast_to(tokens, (rows, len(tokens))), self.initial_state(rows))

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
        """For a search: ``logits`` of rows that generated ``generated`` so far, with the rules, the constraints that
        ``apply`` and the processors applied."""
        generated = np.asarray(generated, dtype=np.int32)
        history = np.concatenate([np.broadcast_to(self.primer, (len(generated), len(self.primer))), generated], axis=1)
        rules = self._search_rules(history)
        logits = self._constrain_rows(logits, rules, history, generated.shape[1])
        if self.processors:
            from mgf.kernel import _native

            _native.Chooser(self.processors, False).process(logits, history)
        return logits

    def _search_rules(self, history: np.ndarray):
        """A RuleSet fed ``history``: the last one's rows taken and fed one token where each row continues a row it
        held (a search's step), else fed from the start (each row's state is a function of its history)."""
        last = getattr(self, "_searched", None)
        if last is not None and history.shape[1] and history.shape[1] <= last[0].max_tokens:
            index = [last[1].get(row[:-1].tobytes()) for row in history]
            if None not in index:
                rules = last[0].take(np.array(index, np.int64))
                rules.feed(history[:, -1:])
                self._searched = rules, {row.tobytes(): i for i, row in enumerate(history)}
                return rules
        rules = self._ruleset(history, max(history.shape[1], len(self.primer) + getattr(self, "steps", 0)) + 1)
        self._searched = rules, {row.tobytes(): i for i, row in enumerate(history)}
        return rules

    # -- checks ----------------------------------------------------------------------------

    def _constrain_rows(self, logits: np.ndarray, rules, history: np.ndarray, step: int) -> np.ndarray:
        """The rules, then the constraints that ``apply``, over ``logits`` (a copy where they are not writable)."""
        if not (logits.flags.writeable and logits.flags.c_contiguous):
            logits = np.array(logits, np.float32, order="C")
        failure = rules.apply(logits)
        if failure is not None:
            self._no_token(failure[0], len(logits), step, failure[1])
        clock = rules.clock()
        self.ctx.clock = clock
        for constraint, ctx, origin in self.applying:
            ctx.step, ctx.history, ctx.clock = step, history, clock
            out = constraint.apply(logits, ctx)
            if not (isinstance(out, np.ndarray) and out.shape == logits.shape):
                raise PluginError(f"{origin.describe('apply')}: returned {type(out).__name__}, expected logits {list(logits.shape)}")
            if np.isnan(out).any() or np.isposinf(out).any():
                raise PluginError(f"{origin.describe('apply')}: returned NaN or +inf logits at step {step}")
            logits = np.ascontiguousarray(out, dtype=np.float32)
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

    # -- chunk by chunk: what mgf.stream runs (core/generation/stream.py) ------------------------

    def extend(self, logits, state, rules, chooser, history: np.ndarray, first: int, count: int,
               more: bool) -> tuple[np.ndarray, State]:
        """Choose ``count`` tokens per row into ``history[:, first:]`` from the model's ``logits`` and ``state`` after
        ``history[:, :first]`` (which ``rules`` was fed): in C (core/kernel/generate.pxi) when the model offers its
        Kernel and every rule and the policy can run there, else in Python, with the same rules, processors and
        draws; return the logits and state after the last token if ``more`` (else after the one before).

        :meth:`generate` calls it chunk by chunk; a stream too, priming the player's tokens (:meth:`prime_from`) in
        between.
        """
        from mgf.kernel import _native

        rows, done = len(history), first - len(self.primer)  # errors count the steps after the primer
        kernel = getattr(self.model, "kernel", None)
        native = ((_native.Kernel, _native.KernelState), (_native.TransformerKernel, _native.TransformerState))
        if (any(isinstance(kernel, k) and isinstance(state, s) for k, s in native) and self.greedy is not None
                and not self.applying and os.environ.get("MGF_PYTHON_LOOP") != "1"):
            logits = np.ascontiguousarray(logits, np.float32)  # the loop writes each step's logits into it
            uniforms = self.rng.random((count, rows)) if not self.greedy else np.empty((0, 0))
            failure = _native.generate(kernel, state, logits, rules, chooser, uniforms, history, first, count, more)
            if failure is not None:
                if failure[2] == -2:
                    raise PluginError(f"{self._backend_name('step')}: returned non-finite logits (NaN or infinity)")
                self._no_token(failure[1], rows, done + failure[0], failure[2])
            if self.bar is not None:
                self.bar.update(count)
            return logits, state
        for i in range(count):
            self.ctx.step, self.ctx.history = done + i, history[:, : first + i]
            logits = self._constrain_rows(logits, rules, self.ctx.history, done + i)
            forbidden = np.isneginf(logits)
            if self.greedy is None:
                chooser.process(logits, self.ctx.history)
                forced = (~forbidden).sum(axis=1) == 1  # the rules left one token (a bar's control): no choice to make
                if forced.all():
                    chosen = np.argmax(~forbidden, axis=1).astype(np.int32)
                else:
                    chosen = self.sampler.choose(logits, self.ctx)
                    if forced.any() and isinstance(chosen, np.ndarray) and chosen.shape == (rows,):
                        chosen = chosen.copy()
                        chosen[forced] = np.argmax(~forbidden[forced], axis=1)
                    chosen = self._check_choice(chosen, forbidden, done + i)
            else:
                chosen = chooser.choose(logits, self.ctx.history, None if self.greedy else self.rng.random(rows))
            history[:, first + i] = chosen
            rules.feed(history[:, first + i : first + i + 1])
            if i + 1 < count or more:
                logits, state = self.step(history[:, first + i].copy(), state)
        return logits, state

    def prime_from(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """The model's logits and state after ``tokens`` (int32 ``[rows, T]``) fed from ``state``: ``Model.prime``,
        checked (the contract's default prime stepped here, each step checked): the primer, and a stream's fed tokens."""
        if type(self.model).prime is Model.prime:
            for column in tokens.T:
                logits, state = self.step(np.ascontiguousarray(column), state)
            return logits, state
        with guard(self.backend, "prime"):
            logits, state = self.model.prime(np.ascontiguousarray(tokens), state)
        self._check_output(logits, state, len(tokens), "prime")
        if self.bar is not None:
            self.bar.update(tokens.shape[1])
        return logits, state


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
