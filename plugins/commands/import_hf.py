"""``mgf import-hf``: a Hugging Face GPT-2 checkpoint (``config.json`` + ``model.safetensors``) as an mgf bundle.

So that a model trained with ``transformers`` (on MidiTok's tokens, say) samples on the native backend, without
PyTorch.  Nothing is imported from ``transformers``: the checkpoint is read as data, the config's JSON is bounded,
the tensors are checked against the shapes the config gives, and ``pytorch_model.bin`` (a pickle) is never read.
GPT-2's ``Conv1D`` weights are ``[in, out]``, as a bundle's are, so they are copied as they are.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mgf import BundleError, InputError, UsageError, check_output, get_representation, hookimpl
from mgf.contract import bundle
from mgf.contract.transformer import MAX_CONTEXT, Transformer
from mgf.plugins.commands.data_options import parse_config

MAX_CONFIG_BYTES = 1 << 20
#: transformers' names of GELU -> the bundle's (``gelu_new`` and ``gelu_pytorch_tanh`` are the same function)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu": "gelu"}
#: settings of GPT2Config that change the function computed, with the value mgf computes
UNSUPPORTED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}
#: tensors of a checkpoint that are not weights: the causal mask buffers older versions of transformers saved
BUFFERS = (".attn.bias", ".attn.masked_bias")


def read_config(directory: str) -> dict:
    """``config.json`` of a GPT-2 checkpoint, bounded and checked for what mgf cannot compute."""
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise InputError(f"{directory}: no config.json (not a Hugging Face model directory)")
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes, not a model config")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f"{path}: not JSON ({str(error)[:80]})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: not a JSON object")
    if config.get("model_type") != "gpt2":
        raise InputError(f"{path}: model_type {config.get('model_type')!r:.40} is not gpt2; mgf imports GPT-2 "
                         "checkpoints (docs/bundle-format.md, Transformer)")
    for key, value in UNSUPPORTED.items():
        if config.get(key, value) != value:
            raise InputError(f"{path}: {key}={config[key]!r:.20} is not supported (mgf computes {key}={value})")
    if config.get("activation_function", "gelu_new") not in ACTIVATIONS:
        raise InputError(f"{path}: activation_function {config['activation_function']!r:.40} is not supported "
                         f"(supported: {', '.join(ACTIVATIONS)})")
    return config


def _int(config: dict, key: str, high: int, default=None) -> int:
    value = config.get(key, default)
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= high):
        raise InputError(f"config.json: {key} must be an integer in [1, {high}], got {value!r:.40}")
    return value


def shape_of(config: dict) -> tuple[int, int, int, Transformer]:
    """Vocabulary, width, blocks and the :class:`Transformer` fields a GPT-2 config describes."""
    vocab = _int(config, "vocab_size", 1 << 22)
    width = _int(config, "n_embd", 1 << 16)
    layers = _int(config, "n_layer", 1024)
    heads = _int(config, "n_head", 1024)
    context = _int(config, "n_positions", MAX_CONTEXT)
    mlp = config.get("n_inner") or 4 * width
    mlp = _int({"n_inner": mlp}, "n_inner", 1 << 20)
    if width % heads:
        raise InputError(f"config.json: n_embd ({width}) is not a multiple of n_head ({heads})")
    epsilon = config.get("layer_norm_epsilon", 1e-5)
    if not (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and 1e-12 <= epsilon <= 1):
        raise InputError(f"config.json: layer_norm_epsilon must be a number in [1e-12, 1], got {epsilon!r:.40}")
    tied = config.get("tie_word_embeddings", True)
    if not isinstance(tied, bool):
        raise InputError(f"config.json: tie_word_embeddings must be true or false, got {tied!r:.40}")
    shape = Transformer(heads=heads, context=context, mlp=mlp, positions="learned", tied=tied,
                        norm_epsilon=float(epsilon), activation=ACTIVATIONS[config.get("activation_function", "gelu_new")])
    return vocab, width, layers, shape


def gpt2_tensors(weights: dict[str, np.ndarray], layers: int, tied: bool) -> dict[str, np.ndarray]:
    """A GPT-2 checkpoint's weights under the bundle's names (with or without the ``transformer.`` prefix)."""
    prefix = "transformer." if any(name.startswith("transformer.") for name in weights) else ""
    renames = {"embedding": "wte.weight", "positions": "wpe.weight", "norm.gamma": "ln_f.weight",
               "norm.beta": "ln_f.bias"}
    for i in range(layers):
        for ours, theirs in (("norm1.gamma", "ln_1.weight"), ("norm1.beta", "ln_1.bias"),
                             ("attention.qkv.kernel", "attn.c_attn.weight"), ("attention.qkv.bias", "attn.c_attn.bias"),
                             ("attention.out.kernel", "attn.c_proj.weight"), ("attention.out.bias", "attn.c_proj.bias"),
                             ("norm2.gamma", "ln_2.weight"), ("norm2.beta", "ln_2.bias"),
                             ("mlp.up.kernel", "mlp.c_fc.weight"), ("mlp.up.bias", "mlp.c_fc.bias"),
                             ("mlp.down.kernel", "mlp.c_proj.weight"), ("mlp.down.bias", "mlp.c_proj.bias")):
            renames[f"block.{i}.{ours}"] = f"h.{i}.{theirs}"
    tensors = {}
    for ours, theirs in renames.items():
        if prefix + theirs not in weights:
            raise InputError(f"model.safetensors: no tensor {prefix + theirs!r} (a GPT-2 of {layers} blocks has one)")
        tensors[ours] = weights[prefix + theirs]
    known = {prefix + theirs for theirs in renames.values()} | {"lm_head.weight"}
    extra = sorted(name for name in weights if name not in known and not name.endswith(BUFFERS))
    if extra:
        raise InputError(f"model.safetensors: tensor(s) a GPT-2 of {layers} blocks does not have: "
                         f"{', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    if not tied:
        if "lm_head.weight" not in weights:
            raise InputError("model.safetensors: tie_word_embeddings is false but there is no lm_head.weight")
        tensors["dense.kernel"] = np.ascontiguousarray(weights["lm_head.weight"].T)
    tensors["dense.bias"] = np.zeros(tensors["embedding"].shape[0], np.float32)  # GPT-2's head has no bias
    return tensors


def gpt2_bundle(directory: str, representation) -> bundle.Bundle:
    """The bundle of the GPT-2 checkpoint in ``directory``, for ``representation``; InputError or BundleError."""
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: not a directory (give the folder with config.json and model.safetensors)")
    config = read_config(directory)
    path = os.path.join(directory, "model.safetensors")
    if not os.path.isfile(path):
        found = [name for name in ("model.safetensors.index.json", "pytorch_model.bin") if
                 os.path.exists(os.path.join(directory, name))]
        why = {"model.safetensors.index.json": "sharded checkpoints are not read; save with a larger max_shard_size",
               "pytorch_model.bin": "pytorch_model.bin is a pickle, which mgf never loads; save it with "
                                    "safe_serialization=True"}
        raise InputError(f"{directory}: no model.safetensors" + (f" ({why[found[0]]})" if found else ""))
    vocab, width, layers, shape = shape_of(config)
    if representation.vocab_size != vocab:
        raise InputError(f"the checkpoint scores {vocab} tokens but representation {representation.name!r} has "
                         f"{representation.vocab_size}; pick the representation (and --config) it was trained on")
    tensors = gpt2_tensors(bundle.read_safetensors(path), layers, shape.tied)
    arch = bundle.Arch.of_transformer(vocab, width, layers, **shape.as_dict())
    spec = {"name": representation.name, "config": representation.config()}
    repr_tensors = {f"repr.{key}": value for key, value in representation.tensors().items()}
    imported = bundle.Bundle(arch, {**tensors, **repr_tensors}, spec,
                             {"source": "huggingface", "imported_from": os.path.basename(os.path.abspath(directory)),
                              "huggingface_config": {k: config[k] for k in sorted(config)
                                                     if isinstance(config[k], (int, float, str, bool))}})
    try:
        bundle.validate(imported, where=path)
    except BundleError as error:
        raise InputError(str(error)) from None
    return imported


def _import(args):
    if os.path.exists(args.output) and not args.force:
        raise UsageError(f"{args.output} exists; pass --force to replace it")
    check_output(args.output)
    representation = get_representation(args.repr, **parse_config(args.config))
    imported = gpt2_bundle(args.directory, representation)
    bundle.write(imported, args.output)
    arch = imported.arch
    print(f"{args.output}: GPT-2 of {len(arch.hidden)} blocks of {arch.embedding_dim}, {arch.transformer.heads} heads, "
          f"context {arch.transformer.context}, {arch.vocab_size} tokens ({representation.name})")


@hookimpl
def register_commands(cli):
    p = cli.command("import-hf", "Convert a Hugging Face GPT-2 checkpoint (config.json + model.safetensors) into a "
                                 "bundle that every mgf backend runs, without PyTorch.")
    p.add_argument("directory", help="the checkpoint's folder (save_pretrained's)")
    p.add_argument("--repr", required=True, help="the representation whose tokens the model was trained on")
    p.add_argument("--config", action="append", metavar="KEY=VALUE",
                   help="representation option (repeatable; see `mgf plugins`)")
    p.add_argument("-o", "--output", required=True, help="bundle to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="replace the output if it exists")
    p.set_defaults(run=_import)
