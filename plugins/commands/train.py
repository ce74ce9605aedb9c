"""``mgf train`` and ``mgf export``: Keras trains, a bundle comes out.  Need ``pip install 'mgf-music[keras]'``."""

import json
import math
import os
import shlex
import socket
import sys
import warnings

import numpy as np

from mgf import BundleError, Infilling, InputError, UsageError, check_output, get_representation, hookimpl
from mgf.contract import bundle
from mgf.contract import registry as plugin_registry
from mgf.contract import transformer as transformers
from mgf.contract.clock import clock_of
from mgf.contract.controls import Conditioned, families_for
from mgf.training.controls import Conditioning, parse_controls
from mgf.training.workers import check_scheduler

from mgf.plugins.keras import archive as keras_archive
from mgf.plugins.commands.data_options import add_parallel_options, add_repr_options, check_workers, parse_config, workers
from mgf.plugins.keras.support import in_child, keras_net, require_keras


def _transpose(text):
    """``"-3:3"`` -> range(-3, 4); ``"0"`` -> range(0, 1)."""
    low, _, high = text.partition(":")
    try:
        low, high = int(low), int(high or low)
    except ValueError:
        raise UsageError(f"--transpose takes LOW:HIGH semitones, e.g. -5:6, got {text!r}") from None
    if low > high:
        raise UsageError(f"--transpose: {low} is above {high}")
    return range(low, high + 1)


MAX_LAYERS = 64  # deeper stacks of recurrent layers do not train; building 10^5 of them took minutes


def _train(args):
    if args.layers < 1 or args.hidden < 1 or args.embedding < 0 or args.seq_len < 1 or args.batch_size < 1 or args.epochs < 1:
        raise UsageError("--layers, --hidden, --seq-len, --batch-size and --epochs must be positive, --embedding >= 0")
    if args.log_every < 0:
        raise UsageError(f"--log-every must be >= 0, got {args.log_every}")
    if args.layers > MAX_LAYERS:
        raise UsageError(f"--layers must be at most {MAX_LAYERS}, got {args.layers}")
    if args.patience < 0:
        raise UsageError(f"--patience must be >= 0, got {args.patience}")
    if args.lr is not None and not 0 < args.lr < math.inf:
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 <= args.val_split < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {args.val_split}")
    if not 0 <= args.infill <= 1:
        raise UsageError(f"--infill must be in [0, 1] (the share of windows made gaps to fill), got {args.infill}")
    if args.infill_context is not None and (args.infill_context < 1 or not args.infill):
        raise UsageError("--infill-context takes a positive number of tokens, with --infill")
    check_workers(args)
    transformer = _transformer(args)
    transpose = _transpose(args.transpose)
    check_output(args.output)  # before hours of training, not at the first checkpoint
    representation = None if args.repr is None else get_representation(args.repr, **parse_config(args.config))
    if args.repr is None and args.config:
        raise UsageError("--config needs --repr")
    if args.infill and representation is not None:
        clock_of(representation, "--infill")  # before TensorFlow is imported; a dataset's representation: in train()
    if not 0 <= args.control_dropout < 1:
        raise UsageError(f"--control-dropout must be in [0, 1), got {args.control_dropout}")
    controls = [] if args.controls is None else parse_controls(args.controls, args.control_dropout)
    if controls and representation is not None:  # before TensorFlow is imported: unknown names, values, no bars
        Conditioning(Conditioned(representation, families_for(clock_of(representation), [
            plugin_registry.get("controls", name)() for name, _ in controls], "--controls")),
            tuple(rate for _, rate in controls))
    if not 0 < args.peer_timeout < math.inf:
        raise UsageError(f"--peer-timeout must be a positive number of seconds, got {args.peer_timeout}")
    require_keras()  # fail early, with the install hint, before reading data
    if args.scheduler is not None:
        check_scheduler(args.scheduler)  # before TensorFlow is imported
    waiting = None
    if args.distributed:
        peers = _peers(os.environ.get("TF_CONFIG"))
        print(f"mgf: waiting up to {args.peer_timeout:g} s (--peer-timeout) for the other workers to join: "
              f"{', '.join(peers) or 'none'}", file=sys.stderr, flush=True)
        waiting = (args.peer_timeout, lambda: _not_joined(peers, args.peer_timeout))
    kwargs = dict(
        hidden=[args.hidden] * args.layers, cell=args.cell, embedding_dim=args.embedding or None, seq_len=args.seq_len,
        batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, val_split=args.val_split, seed=args.seed,
        patience=args.patience, dropout=args.dropout, transpose=transpose, resume=args.resume, quiet=args.quiet,
        log_every=args.log_every, workers=workers(args), scheduler=args.scheduler, distributed=args.distributed,
        infill=args.infill, infill_context=args.infill_context, controls=controls, transformer=transformer,
        command="mgf " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    # in a child process, which a signal can stop even while TensorFlow blocks (keras_support.in_child)
    summary = in_child(_trained, representation, args.data, args.output, ready_within=waiting, **kwargs)
    if summary is None:  # a worker of a distributed run other than the chief: the chief writes the bundle
        return
    epochs, scores = summary
    print(f"{args.output}: {epochs} epochs, "
          + (", ".join(f"{name} {value:.3f}" for name, value in scores.items()) + " nats per validation token"
             if scores else "no validation split"))


def _trained(representation, sources, output, **kwargs):
    """Train (in the child process): the epochs trained and the validation scores, or None on a worker but the chief."""
    from mgf.plugins.keras.train import train

    result = train(representation, sources, output, **kwargs)
    return None if result is None else (result.training["epochs"], result.training.get("validation_cross_entropy"))


TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def _transformer(args):
    """The Transformer ``--arch transformer`` asks for (``--heads``, ``--context``, ``--mlp``), checked; else None."""
    if args.cell != "transformer":
        if args.context is not None or args.mlp is not None or args.heads != 4:
            raise UsageError("--heads, --context and --mlp are for --arch transformer")
        return None
    context = args.seq_len if args.context is None else args.context
    mlp = 4 * args.hidden if args.mlp is None else args.mlp
    try:
        return transformers.parse({"heads": args.heads, "context": context, "mlp": mlp, "tied": False,
                                   "activation": "gelu"}, args.hidden)
    except ValueError as error:
        raise UsageError(f"--arch transformer: {error}") from None


def _peers(text: str | None) -> list[str]:
    """The addresses of the other tasks of the cluster that ``TF_CONFIG`` describes; a UsageError unless it names a
    cluster and this task in it (``{}`` trained alone, as if there were no cluster)."""
    if text is None:
        raise UsageError("--distributed needs TF_CONFIG describing the cluster and this worker (docs/large-collections.md)")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        config = None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    jobs_ok = isinstance(cluster, dict) and cluster and all(
        isinstance(tasks, list) and tasks and all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in tasks)
        for tasks in cluster.values())
    job, index = (task.get("type"), task.get("index")) if isinstance(task, dict) else (None, None)
    if not (jobs_ok and isinstance(job, str) and job in cluster and isinstance(index, int) and not isinstance(index, bool)
            and 0 <= index < len(cluster[job])):
        raise UsageError(f"TF_CONFIG must name the cluster and this worker's task in it, e.g. {TF_CONFIG_EXAMPLE}; "
                         f"got {text[:80]!r} (docs/large-collections.md)")
    return [address for name, tasks in cluster.items() for i, address in enumerate(tasks) if (name, i) != (job, index)]


def _not_joined(peers: list[str], seconds: float):
    """Raise the error of a cluster that did not form in time, naming the workers that do not even accept a connection."""
    absent = [peer for peer in peers if not _accepts(peer)]
    raise InputError(f"--distributed: {', '.join(absent or peers)} did not join within {seconds:g} s; start every worker "
                     "TF_CONFIG lists (each with its own task index), or give them longer with --peer-timeout")


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=0.3).close()
    except (OSError, ValueError):
        return False
    return True


def _export(args):
    representation = get_representation(args.repr, **parse_config(args.config))
    beside = os.path.splitext(args.model)[0] + ".safetensors"
    output = args.output or beside
    if os.path.exists(output) and not args.force:  # said at once, not after importing TensorFlow (6.8 s)
        raise UsageError(f"{output} exists (the trained bundle?); pass --force to replace it, or -o to write elsewhere")
    check_output(output)
    require_keras()
    keras_archive.check(args.model)  # before Keras reads it: bounded members, and a network this machine can hold
    print(in_child(_exported, args.model, representation, output, beside))


def _exported(path, representation, output, beside):
    """Convert the Keras model at ``path`` and write the bundle (in the child process); the bundle's path."""
    net = keras_net()
    arch, tensors = net.to_tensors(net.load_keras(path))
    origin = _trained_bundle(beside)
    # a model trained with --infill scores the representation's ids and four more: its bundle beside it says so
    same = origin is not None and origin.arch.vocab_size == arch.vocab_size
    infill = origin.infill if same else None
    controls = origin.controls if same else None
    expected = (Infilling(representation) if infill else representation).vocab_size
    if controls:
        expected += sum(len(entry["values"]) + 1 for entry in controls)
    if expected != arch.vocab_size:
        raise InputError(f"{path}: the model has {arch.vocab_size} tokens, representation "
                         f"{representation.name!r} has {expected}")
    name = os.path.basename(path)
    spec = {"name": representation.name, "config": representation.config()}
    repr_tensors, training = representation.tensors(), {}
    if origin is not None and origin.arch == arch and origin.representation == spec and all(
            np.array_equal(origin.tensors[key], value) for key, value in tensors.items()):
        repr_tensors, training = origin.repr_tensors, dict(origin.training)  # the same model: keep how it was trained
    else:
        replaced = _trained_bundle(output)
        if replaced is not None and set(replaced.training) - {"exported_from"}:
            warnings.warn(f"replacing {output} drops its training metadata ({', '.join(sorted(replaced.training))}): "
                          f"{name} has other weights or another representation", stacklevel=1)
        elif origin is not None and set(origin.training) - {"exported_from"}:
            warnings.warn(f"{name} differs from {beside} beside it, so its training metadata is not carried over",
                          stacklevel=1)
    training["exported_from"] = name
    bundle.write(bundle.Bundle(arch, {**tensors, **{f"repr.{k}": v for k, v in repr_tensors.items()}}, spec, training,
                               infill=infill, controls=controls), output)
    return output


def _trained_bundle(path):
    """The bundle at ``path``, or None if there is none (or it is not one)."""
    if not os.path.isfile(path):
        return None
    try:
        return bundle.read(path)
    except BundleError:
        return None


@hookimpl
def register_commands(cli):
    p = cli.command("train", "Train an LSTM, GRU or Transformer network (--arch) on music with Keras and write a bundle "
                             "(needs mgf-music[keras]).")
    add_repr_options(p)
    p.add_argument("--data", required=True, action="append",
                   help="a dataset directory (`mgf dataset -o`), corpus:essenFolksong, corpus:bach, a folder of files, "
                        "or a glob (repeat to combine sources)")
    add_parallel_options(p)
    p.add_argument("--distributed", action="store_true",
                   help="train on several machines (tf.distribute.MultiWorkerMirroredStrategy) as TF_CONFIG describes; "
                        "--batch-size is then the global batch")
    p.add_argument("--peer-timeout", type=float, default=300, metavar="SECONDS",
                   help="with --distributed: how long to wait for every worker in TF_CONFIG to join before giving up "
                        "(default: 300)")
    p.add_argument("--cell", "--arch", dest="cell", choices=("lstm", "gru", "transformer"), default="lstm",
                   help="the network: lstm, gru (Keras GRU, reset_after=True) or transformer (GPT-2's block: "
                        "--heads, --context, --mlp; learned positions) (default: lstm)")
    p.add_argument("--hidden", "--d-model", dest="hidden", type=int, default=256,
                   help="units per recurrent layer, or a Transformer's width (default: 256)")
    p.add_argument("--layers", type=int, default=2,
                   help=f"recurrent layers, or Transformer blocks, at most {MAX_LAYERS} (default: 2)")
    p.add_argument("--heads", type=int, default=4, help="with --arch transformer: attention heads (default: 4)")
    p.add_argument("--context", type=int,
                   help="with --arch transformer: positions it reads, at least --seq-len (default: --seq-len)")
    p.add_argument("--mlp", type=int, help="with --arch transformer: MLP width (default: 4 x --d-model)")
    p.add_argument("--embedding", type=int, default=64, help="embedding width; 0 for one-hot input (default: 64)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per training window, at most the longest piece (default: 128)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per batch (default: 64)")
    p.add_argument("--epochs", type=int, default=20, help="most epochs; early stopping may end sooner (default: 20)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 0.001; with --resume, the checkpoint's)")
    p.add_argument("--val-split", type=float, default=0.1, help="fraction of pieces held out (default: 0.1)")
    p.add_argument("--patience", type=int, default=3, help="epochs without validation gain before stopping (default: 3)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout after each recurrent layer, in training (default: 0)")
    p.add_argument("--transpose", default="0", help="augment training pieces by these semitones, LOW:HIGH, e.g. -5:6 (default: 0)")
    p.add_argument("--infill", type=float, default=0.0, metavar="RATE",
                   help="make this share of training windows gaps to fill (fill-in-the-middle), so that the model can "
                        "infill (`mgf infill`); gaps are whole bars, or spans of time without bars (default: 0, off)")
    p.add_argument("--infill-context", type=int, metavar="TOKENS",
                   help="with --infill: music kept on each side of a gap, in tokens (default: a quarter of --seq-len, "
                        "so that half a window is context and the gap has the other half)")
    p.add_argument("--controls", metavar="NAMES",
                   help="condition the model on these attribute controls, read per bar from the music "
                        "(chord,key,density; polyphony for midi; installed ones: `mgf plugins`), so that `mgf generate "
                        "--chords ... --key ... --density N` steers it; NAME=P gives one its own --control-dropout")
    p.add_argument("--control-dropout", type=float, default=0.5, metavar="P",
                   help="with --controls: the probability that a training window leaves a control out, so that the "
                        "model also writes without it (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside the output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--log-every", type=int, default=0, metavar="BATCHES",
                   help="a progress line every BATCHES batches too (default: 0, only per epoch, and every 30 s without a terminal)")
    p.add_argument("-o", "--output", required=True, help="bundle to write (.safetensors); the Keras model goes beside it")
    p.set_defaults(run=_train)

    p = cli.command("export", "Convert a Keras model (Embedding/one-hot -> LSTM... -> Dense) into a bundle; "
                    "the training metadata of the bundle it was trained into is kept.")
    p.add_argument("model", help=".keras file")
    add_repr_options(p)
    p.add_argument("-o", "--output", help="bundle to write (default: beside the model)")
    p.add_argument("--force", action="store_true", help="replace the output if it exists")
    p.set_defaults(run=_export)
