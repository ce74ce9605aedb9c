"""``greedy``: always the most likely allowed token (argmax; ties to the lowest id), after the run's processors."""

from mgf import Policy, hookimpl


class Greedy(Policy):
    """Argmax: ``greedy = True`` tells the core to make the choice itself, inside its C loop when it can.

    Of the processors only those that reorder tokens change what it picks: a repetition penalty
    does, temperature, top-k, top-p and min-p never do.
    """

    name = "greedy"
    greedy = True


@hookimpl
def register_samplers(register):
    register(Greedy)
