"""LogicDense: a layer of learnable two-input gates with fixed random or learned wiring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiffgatesError
from ..kernels import DENSE_CPU_DTYPES, ENGINES, compute_dtype, logic_dense, resolve_engine
from ..kernels.reference import dense_reference
from . import parametrization as P
from .groupsum import GroupSum

CONNECTIONS = ("random", "unique", "local", "learned")
FORWARDS = ("relaxed", "hard", "gumbel")


def random_wiring(
    in_features: int,
    out_features: int,
    connections: str,
    generator: torch.Generator,
    window: int = 64,
    groups: int = 1,
    order: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two input indices per gate, never the same input twice for one gate.

    ``unique`` draws from concatenated permutations so every input is read at least once when
    ``2 * out_features >= in_features``; ``random`` draws inputs independently; ``local`` draws
    both inputs of gate j within ``window`` inputs of its position j x in / out (circularly), so
    each output depends on a band of the input and the network is easier to place and route.
    With ``groups`` (the last layer: one group of gates per class) the positions run over the
    input once per group, so every class still sees all of it. ``order`` lists the inputs in the
    order the windows run along (window position k reads input ``order[k]``; default: index order).
    """
    P.check_choice("connections", connections, CONNECTIONS[:3])
    if in_features < 2:
        raise DiffgatesError(f"a logic layer needs at least 2 inputs, got {in_features}.")
    n = 2 * out_features
    if connections == "local":
        w = max(2, min(window, in_features))
        per_group = max(1, out_features // groups)
        centre = ((torch.arange(out_features) % per_group) * in_features) // per_group - w // 2
        ia = torch.randint(w, (out_features,), generator=generator)
        ib = torch.randint(w - 1, (out_features,), generator=generator)
        ib = ib + (ib >= ia).long()  # another offset in the window
        ia, ib = (centre + ia) % in_features, (centre + ib) % in_features
        return (ia, ib) if order is None else (order[ia], order[ib])
    if connections == "unique":
        reps = -(-n // in_features)
        flat = torch.cat([torch.randperm(in_features, generator=generator) for _ in range(reps)])[:n]
        ia, ib = flat[:out_features].clone(), flat[out_features:].clone()
    else:
        ia = torch.randint(in_features, (out_features,), generator=generator)
        ib = torch.randint(in_features - 1, (out_features,), generator=generator)
        ib = ib + (ib >= ia).long()  # uniform over the inputs other than ia
        return ia, ib
    clash = ia == ib
    while clash.any():
        ib[clash] = torch.randint(in_features, (int(clash.sum()),), generator=generator)
        clash = ia == ib
    return ia, ib


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a factor (deep-network rescue)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


@dataclass(frozen=True)
class GateOptions:
    """How a layer's gates are parametrized, initialised, trained and run; every layer of a model
    gets the same options (from :class:`~diffgates.nn.ModelConfig`).

    ``forward``: ``"relaxed"`` gates in training, or discrete with straight-through gradients
    (``"hard"``; ``"gumbel"`` adds Gumbel noise of ``gumbel_scale`` to the logits); evaluation is
    always the exact discrete circuit. ``grad_factor`` multiplies the gradient passed to the
    layer's input (values > 1 keep deep networks training, as in the original work).
    ``residual_strength``: the ``"residual"`` initialisation's logit margin (None: the
    parametrization's default). ``engine``: ``"auto"`` (the C kernels where they apply),
    ``"cpu"``, ``"torch"`` or ``"reference"`` (the plain 16-term oracle in relaxed training).
    """

    parametrization: str = "softmax16"
    init: str = "residual"
    residual_strength: float | None = None
    forward: str = "relaxed"
    gumbel_scale: float = 1.0
    grad_factor: float = 1.0
    engine: str = "auto"

    def __post_init__(self):
        P.n_weights(self.parametrization)  # checks the name
        P.check_choice("init", self.init, P.INITS)
        P.check_choice("forward", self.forward, FORWARDS)
        P.check_choice("engine", self.engine, ENGINES)
        for name in ("gumbel_scale", "grad_factor"):
            if not getattr(self, name) > 0:  # NaN too
                raise DiffgatesError(f"{name} must be above 0, got {getattr(self, name)}.")
        if self.residual_strength is not None and not math.isfinite(self.residual_strength):
            raise DiffgatesError(f"residual_strength must be a finite number, got {self.residual_strength}.")


class GateLayer(nn.Module):
    """What every layer of learnable gates shares: its :class:`GateOptions`, the seed of its random
    wiring and weights, the mode's coefficients and the gradient factor on its input. Subclasses
    own ``weight`` (gates, n_weights) and the wiring."""

    def __init__(self, options: GateOptions, seed: int | None) -> None:
        super().__init__()
        if not isinstance(options, GateOptions):
            raise DiffgatesError(f"options must be a GateOptions, got {type(options).__name__}.")
        self.options = options
        self.seed = seed
        self.register_load_state_dict_post_hook(_check_indices)

    def index_bounds(self) -> dict[str, int]:
        """Wiring buffer name -> the exclusive upper bound of its indices (checked on load: an index
        out of range would read outside the fused kernels' buffers)."""
        return {}

    def _generator(self) -> torch.Generator:
        gen = torch.Generator()
        gen.manual_seed(self.seed if self.seed is not None else int(torch.randint(2**62, ())))
        return gen

    def _reset_weights(self) -> None:
        o = self.options
        P.init_weights(self.weight, o.parametrization, o.init, o.residual_strength)

    def _mode_coefficients(self) -> torch.Tensor:
        """(gates, 4) coefficients in {1, a, b, ab} for the current mode (the C pass with the C
        kernels; engines ``torch`` and ``reference`` stay plain torch ops)."""
        o = self.options
        fused = o.engine in ("auto", "cpu")
        return P.mode_coefficients(self.weight, o.parametrization, self.training, o.forward, o.gumbel_scale, fused)

    def _on_reference(self) -> bool:
        """Whether the layer runs the plain 16-term oracle (engine ``reference``, relaxed training)."""
        return self.options.engine == "reference" and self.training and self.options.forward == "relaxed"

    def _scaled_input(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.options.grad_factor
        return _ScaleGrad.apply(x, factor) if factor != 1.0 and self.training else x

    def _gate_ids(self) -> torch.Tensor:
        return P.gate_ids(self.weight.detach(), self.options.parametrization)


def _check_indices(module: GateLayer, incompatible) -> None:
    for name, bound in module.index_bounds().items():
        t = getattr(module, name)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
            raise DiffgatesError(
                f"{name} of a loaded {type(module).__name__} holds indices outside 0..{bound - 1}; "
                "the checkpoint is corrupt."
            )


class LogicDense(GateLayer):
    """A layer of ``out_features`` learnable two-input gates, each wired to two inputs.

    The wiring is fixed and random (``connections="unique"`` or ``"random"``), or learned
    (``"learned"``): each gate input then holds ``candidates`` random candidate inputs and
    learnable logits over them; training reads the softmax mixture of the candidates (one-hot
    with straight-through gradients for ``forward="hard"``/``"gumbel"``), and the discrete layer
    reads each input's strongest candidate (``wiring()``), so the circuit is a plain gate list
    again (Mommen et al. 2025, "A Method for Optimizing Connections in Differentiable Logic Gate
    Networks").

    Activations are feature-major: input (in_features, batch), output (out_features, batch), so
    the wiring gathers whole contiguous rows. In ``train()`` mode the gates are trained as
    ``options`` (:class:`GateOptions`) say; in ``eval()`` mode the layer is the exact discrete
    circuit. The wiring lives in buffers, so ``state_dict()`` restores the layer exactly.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        options: GateOptions = GateOptions(),
        connections: str = "unique",
        candidates: int = 8,
        window: int = 64,
        groups: int = 1,
        window_order: torch.Tensor | None = None,
        seed: int | None = None,
    ):
        super().__init__(options, seed)
        self.in_features = in_features
        self.out_features = out_features
        P.check_choice("connections", connections, CONNECTIONS)
        self.connections = connections
        self.window, self.groups = window, groups
        if window_order is not None and not torch.equal(window_order.sort().values, torch.arange(in_features)):
            raise DiffgatesError(f"window_order must be a permutation of the {in_features} inputs.")
        self.window_order = window_order
        self.learned = connections == "learned"
        self.candidates = candidates if self.learned else 1
        if self.learned and candidates < 2:
            raise DiffgatesError(f"learned connections need at least 2 candidates per gate input, got {candidates}.")
        self.weight = nn.Parameter(torch.empty(out_features, P.n_weights(options.parametrization)))
        self.register_buffer("ia", torch.empty(out_features, dtype=torch.long))
        self.register_buffer("ib", torch.empty(out_features, dtype=torch.long))
        if self.learned:  # rows [A inputs; B inputs] of candidates, (2 out, candidates), and their logits
            self.register_buffer("candidate_idx", torch.empty(2 * out_features, candidates, dtype=torch.long))
            self.connection_weight = nn.Parameter(torch.empty(2 * out_features, candidates))
            # the wiring of the gates over the selected rows [A; B]: kept, so kernel caches keyed on it hit
            self.register_buffer("select_ia", torch.arange(out_features), persistent=False)
            self.register_buffer("select_ib", torch.arange(out_features, 2 * out_features), persistent=False)
        self.reset_parameters()

    def index_bounds(self) -> dict[str, int]:
        bounds = {"ia": self.in_features, "ib": self.in_features}
        return {**bounds, "candidate_idx": self.in_features} if self.learned else bounds

    def reset_parameters(self) -> None:
        gen = self._generator()
        if self.learned:
            # candidate k of every gate is one "unique" wiring draw: all inputs stay reachable
            draws = [random_wiring(self.in_features, self.out_features, "unique", gen) for _ in range(self.candidates)]
            self.candidate_idx.copy_(torch.stack([torch.cat(d) for d in draws], dim=-1))
            nn.init.zeros_(self.connection_weight)
            self.wiring()
        else:
            ia, ib = random_wiring(
                self.in_features, self.out_features, self.connections, gen, self.window, self.groups, self.window_order
            )
            self.ia.copy_(ia)
            self.ib.copy_(ib)
        self._reset_weights()

    @property
    def n_gates(self) -> int:
        return self.out_features

    @torch.no_grad()
    def wiring(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ia, ib): the inputs each discrete gate reads. With learned connections each input's
        strongest candidate (first on a tie), also written to the ``ia``/``ib`` buffers."""
        if self.learned:
            best = self.connection_weight.argmax(-1, keepdim=True)
            chosen = self.candidate_idx.gather(-1, best).squeeze(-1)
            self.ia.copy_(chosen[: self.out_features])
            self.ib.copy_(chosen[self.out_features :])
        return self.ia, self.ib

    def _gate_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, ia, ib) the gate kernels read: ``x`` and the wiring; in training with learned
        connections, the selected A and B inputs stacked as rows [A; B] and wiring 0..n-1, n..2n-1."""
        if not (self.learned and self.training):
            return (x, *self.wiring())
        w = self.connection_weight
        soft = lambda v: torch.softmax(v, dim=-1)  # noqa: E731
        one_hot = lambda v: F.one_hot(v.argmax(-1), self.candidates).to(w.dtype)  # noqa: E731
        probs = P.training_choice(w, soft, one_hot, self.options.forward, self.options.gumbel_scale)
        if resolve_engine(self.options.engine, x, DENSE_CPU_DTYPES) == "cpu":
            from ..kernels import cpu

            selected = cpu.select(x, self.candidate_idx, probs)
        else:
            rows = F.embedding(self.candidate_idx, x)  # (2 out, candidates, batch)
            selected = torch.matmul(probs.to(rows.dtype).unsqueeze(-2), rows).squeeze(-2)
        return selected, self.select_ia, self.select_ib

    def coefficients(self) -> torch.Tensor:
        """(out, 4) coefficients in {1, a, b, ab} for the current mode."""
        return self._mode_coefficients()

    def gate_ids(self) -> torch.Tensor:
        return self._gate_ids()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[0] != self.in_features:
            raise DiffgatesError(
                f"LogicDense expects feature-major input of shape ({self.in_features}, batch), got {tuple(x.shape)}."
            )

    def _kernel_coefficients(self, x: torch.Tensor) -> torch.Tensor:
        return self.coefficients().to(compute_dtype(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x, ia, ib = self._gate_inputs(self._scaled_input(x))
        if self._on_reference():
            return dense_reference(x, ia, ib, self.weight.to(x.dtype), self.options.parametrization)
        c = self._kernel_coefficients(x)
        return logic_dense(x, ia, ib, c, "torch" if self.options.engine == "reference" else self.options.engine)

    def grouped(self, x: torch.Tensor, head: GroupSum) -> torch.Tensor:
        """``head(self(x))``; on the C kernels in one pass that never stores this layer's output
        nor broadcasts its gradient (what a last layer before GroupSum spends most on)."""
        if resolve_engine(self.options.engine, x, DENSE_CPU_DTYPES) != "cpu":
            return head(self(x))
        self._check_input(x)
        if self.out_features % head.k:
            return head(self(x))  # GroupSum's own error
        from ..kernels import cpu

        x, ia, ib = self._gate_inputs(self._scaled_input(x))
        return cpu.dense_groupsum(x, ia, ib, self._kernel_coefficients(x), head.k, head.tau)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"parametrization={self.options.parametrization!r}, forward={self.options.forward!r}, "
            f"connections={self.connections!r}"
            + (f", candidates={self.candidates}" if self.learned else "")
            + (f", window={self.window}" if self.connections == "local" else "")
        )


def stacked_scores(layers: list[LogicDense], x: torch.Tensor, head: GroupSum) -> torch.Tensor | None:
    """``head`` of ``layers`` applied in turn to ``x``, with every layer in one tiled pass of the C
    kernels (``kernels.cpu.dense_stack``: each thread takes its share of the batch through all the
    layers, forward and backward), or None where that does not apply: outside autograd (inference
    keeps the layer-by-layer kernels, which need no stored outputs), on another engine, with
    learned connections or a gradient factor in training, or a single layer. Training relaxed
    gates, the kernels make every layer's coefficients from its weights in the same call."""
    if len(layers) < 2 or not torch.is_grad_enabled() or layers[-1].out_features % head.k:
        return None
    for layer in layers:
        plain = not layer.learned and (layer.options.grad_factor == 1.0 or not layer.training)
        if not plain or resolve_engine(layer.options.engine, x, DENSE_CPU_DTYPES) != "cpu":
            return None
    layers[0]._check_input(x)
    from ..kernels import cpu

    wiring = [layer.wiring() for layer in layers]
    param, dtype = layers[0].options.parametrization, compute_dtype(x.dtype)
    if all(_relaxed_in(layer, param, dtype) for layer in layers):  # the kernels make the coefficients
        weights = [layer.weight for layer in layers]
        return cpu.dense_stack(x, wiring, weights, head.k, head.tau, P.weight_basis(param, layers[0].weight))
    cs = [layer._kernel_coefficients(x) for layer in layers]
    return cpu.dense_stack(x, wiring, cs, head.k, head.tau)


def _relaxed_in(layer: LogicDense, parametrization: str, dtype: torch.dtype) -> bool:
    """Whether ``layer`` trains relaxed gates of ``parametrization`` with weights in ``dtype``."""
    relaxed = layer.training and layer.options.forward == "relaxed"
    return relaxed and layer.options.parametrization == parametrization and layer.weight.dtype == dtype


@torch.no_grad()
def wire_skip(layer: LogicDense, hidden: int, n_features: int, n_bits: int, centre: int, groups: int) -> None:
    """Rewire the output ``layer``, which reads ``hidden`` rows of the previous layer and then the
    encoder's ``n_features x n_bits`` thermometer bits: gate ``q`` of a group reads input A from
    threshold ``j = q mod n_bits`` of feature ``centre`` (a group of pass-through gates then counts
    the centre's own value) and input B from the same threshold of another feature, cycling over
    them, or (every other round) from a random hidden row. A gate of two bits of one threshold
    computes that threshold's bit of their minimum (AND) or maximum (OR), so a group's count can mix
    its features' values, minima and maxima like an interpolation; the hidden rows add the rest."""
    n = layer.out_features
    q = torch.arange(n) % (n // groups)
    j, rnd = q % n_bits, q // n_bits
    feature = (rnd // 2) % n_features
    gen = layer._generator()
    layer.ia.copy_(hidden + centre * n_bits + j)
    random_row = torch.randint(0, hidden, (n,), generator=gen)
    layer.ib.copy_(torch.where(rnd % 2 == 0, hidden + feature * n_bits + j, random_row))
    if layer.learned:  # A stays the centre's bit; B learns among as many features' bits or hidden rows
        k = layer.candidates
        if k <= n_features:  # k different features per gate
            others = torch.stack([torch.randperm(n_features, generator=gen)[:k] for _ in range(n)])
        else:
            others = torch.randint(0, n_features, (n, k), generator=gen)
        bits = hidden + others * n_bits + j[:, None]
        rows = torch.randint(0, hidden, (n, k), generator=gen)
        layer.candidate_idx[:n] = layer.ia[:, None]
        layer.candidate_idx[n:] = torch.where((rnd % 2 == 0)[:, None], bits, rows)


@torch.no_grad()
def sort_wiring(layers: list[LogicDense], groups: int = 1) -> None:
    """Relabel the gates of consecutive dense layers so that each layer reads its A inputs in
    ascending order: the kernels then stream those rows instead of jumping through memory.

    The network is the same graph under new gate numbers (each gate moves with its weights and
    its readers in the next layer are rewired to its new number), so it computes the same
    function. The last layer is sorted only within each of its ``groups`` GroupSum blocks, which
    keeps every gate in its class.
    """
    for i, layer in enumerate(layers):
        n = layer.out_features
        last = i == len(layers) - 1
        key = layer.ia + (torch.arange(n) // (n // groups)) * layer.in_features if last else layer.ia
        order = torch.argsort(key, stable=True)
        layer.ia.copy_(layer.ia[order])
        layer.ib.copy_(layer.ib[order])
        layer.weight.copy_(layer.weight[order])
        if not last:
            new_label = torch.empty_like(order)
            new_label[order] = torch.arange(n)
            nxt = layers[i + 1]
            for idx in (nxt.ia, nxt.ib):  # rows past this layer's outputs (skipped-in bits) stay
                idx.copy_(torch.where(idx < n, new_label[idx.clamp(max=n - 1)], idx))
