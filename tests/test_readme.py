"""The README's Python example runs as written, and its circuit's labels are the model's."""

import re
from pathlib import Path

import numpy as np
import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_python_example_runs_and_its_circuit_equals_the_model():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the project's own example
    model, ds, labels = scope["model"], scope["ds"], scope["labels"]
    with torch.no_grad():
        expected = model(torch.as_tensor(ds.x_test)).argmax(1).numpy()
    np.testing.assert_array_equal(labels, expected)
    assert (labels == ds.y_test).mean() > 0.9  # it learns the digits, not just runs
