"""mgf's own exceptions: the API raises these, the CLI turns them into one line and an exit code."""


class MgfError(Exception):
    """Base class of every error mgf raises on purpose."""

    exit_code = 1


class InputError(MgfError, ValueError):
    """Bad input from the user: a file, a primer, a token id, an option value."""


class UsageError(InputError):
    """Options that contradict each other or do not apply; the CLI exits with 2 like argparse."""

    exit_code = 2


class BundleError(MgfError):
    """A model bundle that is missing, malformed or inconsistent."""


class PluginError(MgfError):
    """A plugin that is unknown, broken, or clashes with another."""


class ContractWarning(DeprecationWarning):
    """Code written for an earlier contract (a moved module, ``load(path)``, ``mgf.Sampler``): it still works, and the
    message says what to write instead.  A category of its own so that ``mgf`` shows it, which Python would not."""
