"""Fused CPU kernels (filled in by the fast-training work); unavailable until then."""


def available() -> bool:
    return False
