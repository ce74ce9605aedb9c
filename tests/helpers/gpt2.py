"""An independent GPT-2: the whole sequence at once in float64, on Hugging Face's tensor names, with a causal mask
instead of a cache; and a checkpoint in Hugging Face's layout written by the test itself.

It shares no code with mgf: the import's renaming, the reference's cache and the kernel are all checked against it.
"""

import json
import math
import os

import numpy as np
from safetensors.numpy import save_file


def _norm(x, weights, name, epsilon):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + epsilon) * weights[name + ".weight"] + weights[name + ".bias"]


def _gelu(x, activation):
    if activation == "gelu":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _rotary(x, base):
    """[T, heads, size] turned by position (rotate-half: element i pairs with i + size / 2)."""
    size = x.shape[-1]
    angles = np.arange(x.shape[0])[:, None] * base ** (-np.arange(0, size, 2) / size)[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    first, second = x[..., :size // 2], x[..., size // 2:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], -1)


def forward(weights, config, tokens, rotary_base=None):
    """Logits [T, V] of every position of ``tokens`` (float64); ``rotary_base``: rotary positions instead of wpe."""
    w = {k.removeprefix("transformer."): v.astype(np.float64) for k, v in weights.items()}
    heads, epsilon = config["n_head"], config.get("layer_norm_epsilon", 1e-5)
    activation = "gelu" if config.get("activation_function") == "gelu" else "gelu_new"
    tokens = np.asarray(tokens)
    T = len(tokens)
    x = w["wte.weight"][tokens] + (0 if rotary_base else w["wpe.weight"][:T])
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(config["n_layer"]):
        h = _norm(x, w, f"h.{i}.ln_1", epsilon)
        q, k, v = np.split(h @ w[f"h.{i}.attn.c_attn.weight"] + w[f"h.{i}.attn.c_attn.bias"], 3, -1)
        q, k, v = (a.reshape(T, heads, -1) for a in (q, k, v))
        if rotary_base:
            q, k = _rotary(q, rotary_base), _rotary(k, rotary_base)
        scores = np.einsum("qhs,khs->hqk", q, k) / math.sqrt(q.shape[-1]) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = np.einsum("hqk,khs->qhs", scores / scores.sum(-1, keepdims=True), v).reshape(T, -1)
        x = x + attended @ w[f"h.{i}.attn.c_proj.weight"] + w[f"h.{i}.attn.c_proj.bias"]
        h = _norm(x, w, f"h.{i}.ln_2", epsilon)
        x = x + _gelu(h @ w[f"h.{i}.mlp.c_fc.weight"] + w[f"h.{i}.mlp.c_fc.bias"], activation) \
            @ w[f"h.{i}.mlp.c_proj.weight"] + w[f"h.{i}.mlp.c_proj.bias"]
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["wte.weight"]
    return _norm(x, w, "ln_f", epsilon) @ head.T


def windowed(weights, config, tokens, rotary_base=None):
    """Logits [T, V] after each token under mgf's policy past the context: a full window is cut to its last
    ``n_positions // 2`` tokens before the next one joins, and positions count from the window's start."""
    context, window, rows = config["n_positions"], [], []
    for token in tokens:
        if len(window) == context:
            window = window[-(context // 2):]
        window.append(token)
        rows.append(forward(weights, config, window, rotary_base)[-1])
    return np.array(rows)


def random_checkpoint(directory, vocab=40, width=32, layers=2, heads=4, context=16, seed=0, prefix="transformer.",
                      dtype=np.float32, **config):
    """Write a GPT-2 of random weights as ``save_pretrained`` lays it out (config.json, model.safetensors, the
    causal-mask buffers older versions saved); return (weights as float32, config)."""
    rng = np.random.default_rng(seed)
    config = {"model_type": "gpt2", "vocab_size": vocab, "n_embd": width, "n_layer": layers, "n_head": heads,
              "n_positions": context, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "architectures": ["GPT2LMHeadModel"], **config}
    inner = config["n_inner"] or 4 * width
    shapes = {"wte.weight": (vocab, width), "wpe.weight": (context, width), "ln_f.weight": (width,),
              "ln_f.bias": (width,)}
    for i in range(layers):
        shapes.update({f"h.{i}.ln_1.weight": (width,), f"h.{i}.ln_1.bias": (width,),
                       f"h.{i}.attn.c_attn.weight": (width, 3 * width), f"h.{i}.attn.c_attn.bias": (3 * width,),
                       f"h.{i}.attn.c_proj.weight": (width, width), f"h.{i}.attn.c_proj.bias": (width,),
                       f"h.{i}.ln_2.weight": (width,), f"h.{i}.ln_2.bias": (width,),
                       f"h.{i}.mlp.c_fc.weight": (width, inner), f"h.{i}.mlp.c_fc.bias": (inner,),
                       f"h.{i}.mlp.c_proj.weight": (inner, width), f"h.{i}.mlp.c_proj.bias": (width,)})
    weights = {}
    for name, shape in shapes.items():
        scale = 0.1 if len(shape) == 1 else 1 / math.sqrt(shape[0])
        value = rng.normal(0, scale, shape) + (1 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight")
                                                or name == "ln_f.weight" else 0)
        weights[prefix + name] = value.astype(dtype)
    if not config.get("tie_word_embeddings", True):
        weights["lm_head.weight"] = rng.normal(0, 1 / math.sqrt(width), (vocab, width)).astype(dtype)
    saved = dict(weights)
    for i in range(layers):
        saved[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((1, 1, context, context), dtype))
    os.makedirs(directory, exist_ok=True)
    save_file(saved, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle)
    return {k: v.astype(np.float32) for k, v in weights.items()}, config
