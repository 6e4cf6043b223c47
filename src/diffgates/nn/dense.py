"""LogicDense: a layer of learnable two-input gates with fixed random wiring."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DiffgatesError
from ..kernels import DENSE_CPU_DTYPES, compute_dtype, logic_dense, resolve_engine
from ..kernels.reference import dense_reference
from . import parametrization as P
from .groupsum import GroupSum

CONNECTIONS = ("random", "unique")
FORWARDS = ("relaxed", "hard", "gumbel")


def random_wiring(
    in_features: int, out_features: int, connections: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two input indices per gate, never the same input twice for one gate.

    ``unique`` draws from concatenated permutations so every input is read at least once when
    ``2 * out_features >= in_features``; ``random`` draws inputs independently.
    """
    P.check_choice("connections", connections, CONNECTIONS)
    if in_features < 2:
        raise DiffgatesError(f"a logic layer needs at least 2 inputs, got {in_features}.")
    n = 2 * out_features
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


class GateLayer(nn.Module):
    """What every layer of learnable gates shares: the gate options, the mode's coefficients and
    the gradient factor on its input. Subclasses own ``weight`` (gates, n_weights) and the wiring."""

    def _set_gate_options(
        self, parametrization, init, residual_strength, seed, forward, gumbel_scale, grad_factor, engine
    ) -> None:
        P.check_choice("forward", forward, FORWARDS)
        P.n_weights(parametrization)  # checks the name
        self.parametrization = parametrization
        self.init = init
        self.residual_strength = residual_strength
        self.seed = seed
        self.forward_mode = forward
        self.gumbel_scale = gumbel_scale
        self.grad_factor = grad_factor
        self.engine = engine

    def _generator(self) -> torch.Generator:
        gen = torch.Generator()
        gen.manual_seed(self.seed if self.seed is not None else int(torch.randint(2**62, ())))
        return gen

    def _mode_coefficients(self) -> torch.Tensor:
        """(gates, 4) coefficients in {1, a, b, ab} for the current mode (the C pass with the C
        kernels; engines ``torch`` and ``reference`` stay plain torch ops)."""
        fused = self.engine in ("auto", "cpu")
        return P.mode_coefficients(
            self.weight, self.parametrization, self.training, self.forward_mode, self.gumbel_scale, fused
        )

    def _scaled_input(self, x: torch.Tensor) -> torch.Tensor:
        return _ScaleGrad.apply(x, self.grad_factor) if self.grad_factor != 1.0 and self.training else x

    def _gate_ids(self) -> torch.Tensor:
        return P.gate_ids(self.weight.detach(), self.parametrization)


class LogicDense(GateLayer):
    """A layer of ``out_features`` learnable two-input gates, each wired to two fixed inputs.

    Activations are feature-major: input (in_features, batch), output (out_features, batch), so
    the wiring gathers whole contiguous rows. In ``train()`` mode the gates are relaxed
    (``forward="relaxed"``), or discrete with straight-through gradients (``"hard"``, ``"gumbel"``
    adds Gumbel noise to the logits); in ``eval()`` mode the layer is the exact discrete circuit.
    ``grad_factor`` multiplies the gradient passed to the layer's input (values > 1 keep deep
    networks training, as in the original work).
    The wiring lives in buffers, so ``state_dict()`` restores the layer exactly.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        parametrization: str = "softmax16",
        connections: str = "unique",
        init: str = "residual",
        residual_strength: float | None = None,
        seed: int | None = None,
        forward: str = "relaxed",
        gumbel_scale: float = 1.0,
        grad_factor: float = 1.0,
        engine: str = "auto",
    ):
        super().__init__()
        self._set_gate_options(
            parametrization, init, residual_strength, seed, forward, gumbel_scale, grad_factor, engine
        )
        self.in_features = in_features
        self.out_features = out_features
        self.connections = connections
        self.weight = nn.Parameter(torch.empty(out_features, P.n_weights(parametrization)))
        self.register_buffer("ia", torch.empty(out_features, dtype=torch.long))
        self.register_buffer("ib", torch.empty(out_features, dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        ia, ib = random_wiring(self.in_features, self.out_features, self.connections, self._generator())
        self.ia.copy_(ia)
        self.ib.copy_(ib)
        P.init_weights(self.weight, self.parametrization, self.init, self.residual_strength)

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
        x = self._scaled_input(x)
        if self.engine == "reference" and self.training and self.forward_mode == "relaxed":
            return dense_reference(x, self.ia, self.ib, self.weight.to(x.dtype), self.parametrization)
        c = self._kernel_coefficients(x)
        return logic_dense(x, self.ia, self.ib, c, "torch" if self.engine == "reference" else self.engine)

    def grouped(self, x: torch.Tensor, head: GroupSum) -> torch.Tensor:
        """``head(self(x))``; on the C kernels in one pass that never stores this layer's output
        nor broadcasts its gradient (what a last layer before GroupSum spends most on)."""
        if resolve_engine(self.engine, x, DENSE_CPU_DTYPES) != "cpu":
            return head(self(x))
        self._check_input(x)
        if self.out_features % head.k:
            return head(self(x))  # GroupSum's own error
        from ..kernels import cpu

        x = self._scaled_input(x)
        return cpu.dense_groupsum(x, self.ia, self.ib, self._kernel_coefficients(x), head.k, head.tau)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"parametrization={self.parametrization!r}, forward={self.forward_mode!r}"
        )


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
            nxt.ia.copy_(new_label[nxt.ia])
            nxt.ib.copy_(new_label[nxt.ib])
