"""Merge circuits into one whose class counts are the sum of theirs: an ensemble in hardware.

Members read the same raw features; input bits with the same feature and threshold become one
input bit, every member's gates follow one another (each still reads only its own signals and the
shared inputs, so the order stays topological), and class ``c`` of the merged circuit counts the
outputs of class ``c`` of every member. The optimisation passes then share whatever the members
compute alike (structural hashing merges their identical gates).
"""

from __future__ import annotations

import numpy as np

from ..errors import DiffgatesError
from .ir import Circuit


def merge(circuits: list[Circuit]) -> Circuit:
    """One circuit computing, for every input, the sum of the class counts of ``circuits``.

    Its ``tau`` is the members' common temperature (their mean where they differ: the merged
    counts weigh every output bit alike, whatever its member's temperature was)."""
    if not circuits:
        raise DiffgatesError("merge needs at least one circuit.")
    first = circuits[0]
    for c in circuits[1:]:
        if (c.n_features, c.n_classes) != (first.n_features, first.n_classes):
            raise DiffgatesError(
                f"cannot merge a circuit of {c.n_features} features and {c.n_classes} classes with one of "
                f"{first.n_features} features and {first.n_classes} classes."
            )
    # shared input bits: one per distinct (feature, threshold), in order of first appearance
    feature = np.concatenate([c.in_feature for c in circuits]).astype(np.int64)
    threshold = np.concatenate([c.in_threshold for c in circuits])
    keys = np.stack([feature, threshold.view(np.int32).astype(np.int64)], 1)
    _, first_seen, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first_seen)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    input_of = rank[inverse.reshape(-1)]  # merged input bit of every member input bit, members one after another
    n_in = len(order)

    ops, a, b, layer, outputs = [], [], [], [], []
    next_signal, next_input, next_layer = n_in, 0, 0
    for c in circuits:
        signal = np.concatenate(
            [input_of[next_input : next_input + c.n_inputs], next_signal + np.arange(c.n_gates)]
        )  # member signal -> merged signal
        ops.append(c.ops)
        a.append(signal[c.a])
        b.append(signal[c.b])
        layer.append(c.layer + next_layer)
        outputs.append(signal[c.outputs].reshape(c.n_classes, -1))
        next_signal += c.n_gates
        next_input += c.n_inputs
        next_layer += int(c.layer.max(initial=-1)) + 1
    return Circuit(
        n_features=first.n_features,
        in_feature=feature[first_seen[order]],
        in_threshold=threshold[first_seen[order]],
        ops=np.concatenate(ops),
        a=np.concatenate(a),
        b=np.concatenate(b),
        outputs=np.concatenate(outputs, axis=1).reshape(-1),
        layer=np.concatenate(layer),
        n_classes=first.n_classes,
        tau=float(np.mean([c.tau for c in circuits])),
        argmax=all(c.argmax for c in circuits),
    )
