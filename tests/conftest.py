import numpy as np
import pytest
import torch

from diffgates.nn.model import LogicNet, ModelConfig


def random_model(n_features=12, widths=(40, 30), n_classes=3, bits=2, param="softmax16", seed=0, scale=4.0):
    """A model with random wiring and random (decisive) gate weights, fitted encoder, eval mode."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        n_features=n_features,
        n_classes=n_classes,
        widths=list(widths),
        encoder_bits=bits,
        parametrization=param,
        seed=seed,
        init="gaussian",
    )
    model = LogicNet(cfg, engine="torch")
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.normal_(0, scale)
    rng = np.random.default_rng(seed)
    model.encoder.fit(rng.normal(size=(64, n_features)))
    return model.eval()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
