"""Command-line options shared by the data commands (``mgf encode/decode/dataset``) and ``mgf train``.

A helper module of those two plugins, not a plugin: nothing here is registered.
"""

from mgf import UsageError
from mgf.training.workers import local_cores


def parse_config(pairs):
    """``["key=value", ...]`` -> dict of strings; each representation option parses its own value."""
    config = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--config takes KEY=VALUE, got {pair[:40]!r}")
        config[key] = value
    return config


def add_repr_options(parser):
    """``--repr``, ``--bundle`` and ``--config``: which representation a command reads or writes with."""
    parser.add_argument("--repr", help="representation (default: the bundle's)")
    parser.add_argument("--bundle", help="take the representation, its config and learned tensors (a codebook) "
                                         "from this model bundle")
    parser.add_argument("--config", action="append", metavar="KEY=VALUE",
                        help="representation option (repeatable; see `mgf plugins`)")


def add_parallel_options(parser):
    """``--workers`` and ``--scheduler``: where files are encoded (``mgf dataset``, ``mgf train``)."""
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="local processes that encode files (default: 0, one per core)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="encode on this Dask cluster instead (pip install 'mgf-music[distributed]'); "
                             "its workers must see the same file paths")


def check_workers(args):
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0 (0: one per core), got {args.workers}")
    if args.scheduler is not None and args.workers:
        raise UsageError("--workers and --scheduler exclude each other: the cluster decides how many workers")


def workers(args):
    """The ``--workers`` asked for; 0 means one per core."""
    return args.workers or local_cores()
