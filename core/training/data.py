"""Contract 2's ``mgf.data``, kept for the plugins written against it: each name is now at home in one module.

``import mgf.data`` (or ``mgf.data.X``) still works, with a DeprecationWarning, and gives this module.
New code imports from where each name lives: :mod:`mgf.training.sources` (finding and encoding files,
:class:`Dataset`, :func:`load`), :mod:`~mgf.training.cache` (the token cache), :mod:`~mgf.training.shards`
(dataset directories), :mod:`~mgf.training.build` (writing them), :mod:`~mgf.training.split`,
:mod:`~mgf.training.windows`, :mod:`~mgf.training.workers` (processes) and :mod:`~mgf.training.progress`.
"""

from mgf.training.build import build
from mgf.training.cache import CACHE_FORMAT, MAX_META_BYTES, MAX_PIECE_TOKENS, MAX_PIECES, cache_root
from mgf.training.progress import LINE_SECONDS, duration
from mgf.training.shards import (DATASET_FORMAT, MANIFEST, MAX_LINE_BYTES, MAX_MANIFEST_BYTES, MAX_TENSOR_BYTES,
                                 SHARD_TOKENS, Shards, is_dataset, stream)
from mgf.training.sources import Dataset, Encoded, augment, encode, files, load
from mgf.training.split import held_out, held_out_files, piece_key, position, sides
from mgf.training.windows import windows
from mgf.training.workers import (SCHEDULER_TIMEOUT, check_scheduler, dask_client, exit_with_parent, local_cores,
                                  worker_context)

__all__ = [
    "CACHE_FORMAT", "DATASET_FORMAT", "LINE_SECONDS", "MANIFEST", "MAX_LINE_BYTES", "MAX_MANIFEST_BYTES", "MAX_META_BYTES",
    "MAX_PIECES", "MAX_PIECE_TOKENS", "MAX_TENSOR_BYTES", "SCHEDULER_TIMEOUT", "SHARD_TOKENS", "Dataset", "Encoded",
    "Shards", "augment", "build", "cache_root", "check_scheduler", "dask_client", "duration", "encode", "exit_with_parent",
    "files", "held_out", "held_out_files", "is_dataset", "load", "local_cores", "piece_key", "position", "sides",
    "stream", "windows", "worker_context",
]
