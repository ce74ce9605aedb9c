"""Every hook mgf calls, with its arguments and what it must return (mgf contract 2).

Plugins implement any subset of these with ``@mgf.hookimpl``; an implementation may take
fewer arguments than the spec names, so specs can grow without breaking plugins.  mgf calls
each ``register_<kind>`` hook once per process, the first time something of that kind is
looked up, and ``register_commands`` when the command line is built; it calls one plugin at a
time: a plugin whose hook raises is skipped with a one-line warning, and what that hook
registered is dropped.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("mgf")
hookimpl = HookimplMarker("mgf")


@hookspec
def register_representations(register):
    """Register representations: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Representation` with a unique
        ``name``.  A class that is not a concrete subclass, or whose name is taken, is skipped
        with a warning (the built-in, or the first registered, is kept).  Returns ``None``.
    """


@hookspec
def register_models(register):
    """Register model backends: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.ModelBackend` with a unique
        ``name``; same rules as for representations.  Returns ``None``.
    """


@hookspec
def register_samplers(register):
    """Register samplers: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Sampler` with a unique ``name``
        that implements ``choose`` (a policy) or ``search`` (a branching search); same rules as
        for representations.  Returns ``None``.
    """


@hookspec
def register_constraints(register):
    """Register constraints: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Constraint` with a unique
        ``name`` that implements ``apply``; same rules as for representations.  Returns ``None``.
    """


@hookspec
def register_controls(register):
    """Register attribute controls (contract 3): call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Control` with a unique ``name``
        that implements ``values`` and ``extract`` (docs/contract.md, "Controls"); same rules as
        for representations.  A model trained with ``mgf train --controls NAME`` needs it installed
        to load.  Returns ``None``.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``mgf`` command line.

    :param cli: the :class:`mgf.cli.main.Commands` of this run; call
        ``cli.command(name, help)`` to get an :class:`argparse.ArgumentParser` for the new
        subcommand and ``parser.set_defaults(run=function)``; ``function(args)`` is called with
        the parsed :class:`argparse.Namespace` and returns an exit code or ``None``.
        Raise :class:`mgf.MgfError` for errors the user should see as one line; anything else
        is reported as a one-line :class:`mgf.PluginError` naming the plugin.
    """
