"""Gate parametrizations: how a gate node's learnable weights become its relaxed coefficients.

Both parametrizations end in the same place, the 4 coefficients (c0, c1, c2, c3) of the relaxed
gate in the basis {1, a, b, ab}; kernels only ever see those, so the per-sample work is the same.

- ``softmax16``: 16 logits per gate; c = softmax(w) @ BASIS; discretised by argmax (Petersen 2022).
- ``truth4``: 4 logits per gate, one per input pattern 00, 01, 10, 11; sigmoid(w) is the
  probability of output 1 for that pattern; c = sigmoid(w) @ PATTERN_BASIS; discretised by
  thresholding each entry at 0.5, which is always a valid gate (the "input-wise" Light DLGN form).
"""

from __future__ import annotations

import functools

import torch

from .. import gates
from ..errors import DiffgatesError

PARAMETRIZATIONS = ("softmax16", "truth4")
INITS = ("residual", "gaussian")

#: Default residual strength: softmax16 logit of gate A (5 -> ~90 % A); truth4 logit magnitude.
DEFAULT_RESIDUAL = {"softmax16": 5.0, "truth4": 3.0}


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DiffgatesError(f"{name} must be one of {', '.join(allowed)}, got {value!r}.")


def n_weights(parametrization: str) -> int:
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    return 16 if parametrization == "softmax16" else 4


def init_weights(weight: torch.Tensor, parametrization: str, init: str, strength: float | None = None) -> None:
    """Fill ``weight`` in place: residual (biased toward pass-through A) or plain Gaussian
    (``init``, checked with the rest of a layer's options by ``GateOptions``)."""
    with torch.no_grad():
        if init == "gaussian":
            weight.normal_()
            return
        s = DEFAULT_RESIDUAL[parametrization] if strength is None else strength
        passes = torch.full((len(weight),), gates.A)
        weight.copy_(weights_for(passes, parametrization, s, weight.dtype))


def weights_for(ids, parametrization: str, strength: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(len(ids), n_weights) weights that select the gates ``ids``, each with logit ``strength``:
    the logit of the gate (softmax16), or +-strength for each truth-table entry (truth4)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if parametrization == "softmax16":
        w = torch.zeros(len(ids), 16, dtype=dtype)
        w[torch.arange(len(ids)), ids] = strength
        return w
    return strength * (2 * torch.as_tensor(gates.TRUTH, dtype=dtype)[ids] - 1)


@functools.cache
def _basis_cached(name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    table = gates.BASIS if name == "gate" else gates.PATTERN_BASIS
    return torch.as_tensor(table, dtype=dtype, device=device)


def _basis(name: str, like: torch.Tensor) -> torch.Tensor:
    return _basis_cached(name, like.dtype, like.device)


def weight_basis(parametrization: str, like: torch.Tensor) -> torch.Tensor:
    """(n_weights, 4): what the probabilities of ``parametrization`` multiply to give coefficients."""
    return _basis("gate" if parametrization == "softmax16" else "pattern", like)


def relaxed_coefficients_torch(weight: torch.Tensor, parametrization: str) -> torch.Tensor:
    """:func:`relaxed_coefficients` in plain torch ops (any device; the oracle of the fused one)."""
    probs = torch.softmax(weight, dim=-1) if parametrization == "softmax16" else torch.sigmoid(weight)
    return probs @ weight_basis(parametrization, weight)


def relaxed_coefficients(weight: torch.Tensor, parametrization: str, fused: bool = True) -> torch.Tensor:
    """(n, 4) coefficients of the relaxed gates, differentiable in ``weight``: one fused C pass
    when ``fused`` and the C kernels apply to ``weight`` (engine ``auto`` would pick them), else
    torch ops."""
    from ..kernels import resolve_engine

    if fused and resolve_engine("auto", weight) == "cpu":
        from ..kernels import cpu

        return cpu.coefficients(weight, weight_basis(parametrization, weight))
    return relaxed_coefficients_torch(weight, parametrization)


def gate_ids(weight: torch.Tensor, parametrization: str) -> torch.Tensor:
    """(n,) int64 ids of the discrete gates the weights select."""
    if parametrization == "softmax16":
        return weight.argmax(dim=-1)
    bits = (weight > 0).long()  # sigmoid(w) > 0.5
    return (bits[:, 0] << 3) | (bits[:, 1] << 2) | (bits[:, 2] << 1) | bits[:, 3]


def hard_coefficients(weight: torch.Tensor, parametrization: str) -> torch.Tensor:
    """(n, 4) coefficients of the discrete gates (exact 0/1 arithmetic on bit inputs)."""
    return _basis("gate", weight)[gate_ids(weight, parametrization)]


def mode_coefficients(
    weight: torch.Tensor, parametrization: str, training: bool, forward: str, gumbel_scale: float, fused: bool = True
) -> torch.Tensor:
    """(n, 4) coefficients for a layer's mode: discrete in eval; in training relaxed, or discrete
    with straight-through gradients (``hard``; ``gumbel`` draws the gate from noisy logits).
    ``fused``: as in :func:`relaxed_coefficients`."""
    if not training:
        return hard_coefficients(weight, parametrization)
    return training_choice(
        weight,
        lambda w: relaxed_coefficients(w, parametrization, fused),
        lambda w: hard_coefficients(w, parametrization),
        forward,
        gumbel_scale,
        binary=parametrization != "softmax16",
    )


def training_choice(weight, relaxed_of, hard_of, forward: str, gumbel_scale: float, binary: bool = False):
    """What a learnable choice (a gate, a connection) gives in training: ``relaxed_of(weight)``
    for ``forward="relaxed"``, else ``hard_of(weight)`` in the forward pass with the gradient of
    ``relaxed_of(weight)`` (straight-through). ``"gumbel"`` perturbs the logits first, forward
    and backward (Gumbel-ST: a sampled discrete choice, the gradient of the perturbed relaxation):
    Gumbel noise for a softmax over options, logistic noise (the difference of two Gumbels, which
    keeps P(1) = sigmoid(w)) for ``binary`` independent sigmoid logits like truth4's."""
    if forward == "gumbel" and torch.is_grad_enabled():
        weight = weight + (logistic_noise if binary else gumbel_noise)(weight, gumbel_scale)
    relaxed = relaxed_of(weight)
    if forward == "relaxed":
        return relaxed
    return hard_of(weight.detach()) + (relaxed - relaxed.detach())  # exactly hard in forward


def gumbel_noise(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Gumbel(0, scale) noise shaped like ``weight``: argmax(w + noise) samples softmax(w / scale)."""
    u = torch.rand_like(weight).clamp_(1e-9, 1 - 1e-9)
    return -scale * torch.log(-torch.log(u))


def logistic_noise(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Logistic(0, scale) noise shaped like ``weight``: w + noise > 0 with probability sigmoid(w / scale)."""
    u = torch.rand_like(weight).clamp_(1e-9, 1 - 1e-9)
    return scale * (torch.log(u) - torch.log1p(-u))


#: ROLES[g]: whether gate g reads input A, reads B, reads both (else it is a constant, a wire or
#: an inverted wire, which compile to nothing).
ROLES = torch.as_tensor(list(zip(gates.READS_A, gates.READS_B, gates.TWO_INPUT)), dtype=torch.float32)


def role_probabilities(weight: torch.Tensor, parametrization: str) -> torch.Tensor:
    """(n, 3) probability that each gate's choice reads A, reads B, reads both (the discrete
    gate drawn from the relaxed choice), differentiable in ``weight``. For ``truth4`` the four
    table entries are independent Bernoulli(sigmoid(w)), in closed form."""
    if parametrization == "softmax16":
        return torch.softmax(weight, dim=-1) @ ROLES.to(weight)
    q0, q1, q2, q3 = torch.sigmoid(weight).unbind(-1)  # P(1) for patterns 00, 01, 10, 11
    same = lambda x, y: x * y + (1 - x) * (1 - y)  # noqa: E731
    ignores_a = same(q0, q2) * same(q1, q3)
    ignores_b = same(q0, q1) * same(q2, q3)
    constant = q0 * q1 * q2 * q3 + (1 - q0) * (1 - q1) * (1 - q2) * (1 - q3)
    return torch.stack([1 - ignores_a, 1 - ignores_b, 1 - ignores_a - ignores_b + constant], -1)
