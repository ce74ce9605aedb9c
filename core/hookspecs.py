"""Every hook mgf calls, with its arguments and what it must return.

Plugins implement any subset of these with ``@mgf.hookimpl``; an implementation may take
fewer arguments than the spec names, so specs can grow without breaking plugins.  mgf calls
each hook once per process, when plugins are first needed (``mgf.plugins.load_plugins``).
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("mgf")
hookimpl = HookimplMarker("mgf")


@hookspec
def register_representations(register):
    """Register representations: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Representation` whose ``name``
        is unique among all installed plugins.  Returns ``None``.
    """


@hookspec
def register_models(register):
    """Register model backends: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.ModelBackend` whose ``name``
        is unique among all installed plugins.  Returns ``None``.
    """


@hookspec
def register_samplers(register):
    """Register samplers: call ``register(cls)`` once for each.

    :param register: callable taking a subclass of :class:`mgf.Sampler` whose ``name`` is
        unique among all installed plugins.  Returns ``None``.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``mgf`` command line.

    :param cli: the :class:`mgf.cli.main.Commands` of this run; call
        ``cli.command(name, help)`` to get an :class:`argparse.ArgumentParser` for the new
        subcommand and ``parser.set_defaults(run=function)``; ``function(args)`` is called with
        the parsed :class:`argparse.Namespace` and returns an exit code or ``None``.
        Raise :class:`mgf.MgfError` for errors the user should see as one line.
    """
