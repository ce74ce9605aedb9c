"""The shape of a decoder-only Transformer in a bundle (``"cell": "transformer"``; docs/bundle-format.md).

GPT-2's block: pre-LayerNorm multi-head causal self-attention and a GELU MLP, each added to the residual
stream, with learned absolute positions, or rotary ones (LLaMA's rotate-half convention) instead.  Kept apart
from :class:`mgf.contract.bundle.Arch` so that the recurrent shapes stay as they were; an ``Arch`` of cell
``transformer`` carries one of these as ``transformer``, its ``hidden`` is the model width once per block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

POSITIONS = ("learned", "rotary")
#: GELU as GPT-2 computes it (``gelu_new``: the tanh approximation), or exactly (erf), as Keras's default
ACTIVATIONS = ("gelu_tanh", "gelu")
#: bounds a reader applies: a context beyond this needs a cache of more than 2**31 floats at modest widths
MAX_CONTEXT = 1 << 16
MAX_HEADS = 1024


@dataclass(frozen=True)
class Transformer:
    """What a Transformer bundle adds to its width and depth: heads, context, MLP width and conventions."""

    heads: int
    context: int
    mlp: int
    positions: str = "learned"
    #: the output projection is the token embedding transposed (GPT-2), so there is no ``dense.kernel``
    tied: bool = True
    norm_epsilon: float = 1e-5
    activation: str = "gelu_tanh"
    rotary_base: float = 10000.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tensor_shapes(self, vocab_size: int, width: int, layers: int) -> dict[str, tuple[int, ...]]:
        """The tensors of a Transformer of ``layers`` blocks of ``width``, with their shapes (docs/bundle-format.md)."""
        d = width
        shapes: dict[str, tuple[int, ...]] = {"embedding": (vocab_size, d)}
        if self.positions == "learned":
            shapes["positions"] = (self.context, d)
        for i in range(layers):
            block = f"block.{i}"
            shapes.update({
                f"{block}.norm1.gamma": (d,), f"{block}.norm1.beta": (d,),
                f"{block}.attention.qkv.kernel": (d, 3 * d), f"{block}.attention.qkv.bias": (3 * d,),
                f"{block}.attention.out.kernel": (d, d), f"{block}.attention.out.bias": (d,),
                f"{block}.norm2.gamma": (d,), f"{block}.norm2.beta": (d,),
                f"{block}.mlp.up.kernel": (d, self.mlp), f"{block}.mlp.up.bias": (self.mlp,),
                f"{block}.mlp.down.kernel": (self.mlp, d), f"{block}.mlp.down.bias": (d,),
            })
        shapes["norm.gamma"], shapes["norm.beta"] = (d,), (d,)
        if not self.tied:
            shapes["dense.kernel"] = (d, vocab_size)
        shapes["dense.bias"] = (vocab_size,)
        return shapes


def parse(value: Any, width: int | None) -> Transformer:
    """``value`` (the ``transformer`` object of ``mgf.arch``) as a :class:`Transformer` for blocks of ``width``, or
    ValueError naming the field that is wrong."""
    if not isinstance(value, dict):
        raise ValueError("transformer must be a JSON object")
    unknown = set(value) - set(Transformer.__dataclass_fields__)
    if unknown:
        raise ValueError(f"transformer has unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    heads, context, mlp = (_count(value, name, high) for name, high in
                           (("heads", MAX_HEADS), ("context", MAX_CONTEXT), ("mlp", 1 << 20)))
    if width is None or width % heads:
        raise ValueError(f"the model width ({width}) must be a multiple of the transformer's {heads} heads")
    positions = value.get("positions", "learned")
    if positions not in POSITIONS:
        raise ValueError(f"transformer positions must be one of {', '.join(POSITIONS)}, got {positions!r:.40}")
    if positions == "rotary" and (width // heads) % 2:
        raise ValueError(f"rotary positions need an even head width, got {width // heads}")
    activation = value.get("activation", "gelu_tanh")
    if activation not in ACTIVATIONS:
        raise ValueError(f"transformer activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r:.40}")
    tied = value.get("tied", True)
    if not isinstance(tied, bool):
        raise ValueError(f"transformer tied must be true or false, got {tied!r:.40}")
    numbers: list[float] = []
    for name, default, low, high in (("norm_epsilon", 1e-5, 1e-12, 1.0), ("rotary_base", 10000.0, 1.0, 1e9)):
        number = value.get(name, default)
        if not (isinstance(number, (int, float)) and not isinstance(number, bool) and low <= number <= high):
            raise ValueError(f"transformer {name} must be a number in [{low:g}, {high:g}], got {number!r:.40}")
        numbers.append(float(number))
    return Transformer(heads=heads, context=context, mlp=mlp, positions=positions, tied=tied, norm_epsilon=numbers[0],
                       activation=activation, rotary_base=numbers[1])


def _count(value: dict[str, Any], name: str, high: int) -> int:
    number = value.get(name)
    if not (isinstance(number, int) and not isinstance(number, bool) and 0 < number <= high):
        raise ValueError(f"transformer {name} must be an integer in [1, {high}], got {number!r:.40}")
    return number
