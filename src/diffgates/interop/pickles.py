"""Reading another library's ``torch.save`` files without running its code.

A whole model saved with ``torch.save(model)`` is a pickle that names the library's classes; a
normal unpickler imports them and runs whatever they define. Here every class of torchlogix,
difflogic and ``torch.nn`` is rebuilt as an inert :class:`Record` (its class name and attributes),
tensors are rebuilt by torch's own functions, and any other global the file names is refused. A
plain state dict reads the same way.
"""

from __future__ import annotations

import collections
import pickle
import types
import warnings
from functools import cache
from pathlib import Path

import torch

from ..errors import DiffgatesError

#: packages whose classes become Records (their code never runs)
RECORDED = ("torchlogix", "difflogic", "torch.nn.modules")

#: the only functions and types a checkpoint may call: torch's tensor rebuilding and containers
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "tuple"): tuple,
}


class Record:
    """An object of a recorded class: ``kind`` is its full class name, its attributes are the
    pickled ones (an ``nn.Module``'s ``_parameters``, ``_buffers`` and ``_modules`` included)."""

    kind = ""

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) of __reduce_ex__
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    @property
    def name(self) -> str:
        return self.kind.rsplit(".", 1)[-1]

    def children(self) -> list[Record]:
        modules = self.__dict__.get("_modules") or {}
        if not isinstance(modules, dict) or not all(m is None or isinstance(m, Record) for m in modules.values()):
            raise DiffgatesError(
                f"the checkpoint's {self.kind} holds something other than modules among its modules, "
                "so it is not a model that torch.save wrote (or the file is damaged)."
            )
        return [m for m in modules.values() if m is not None]

    def tensor(self, name: str) -> torch.Tensor | None:
        """A parameter, buffer or plain tensor attribute called ``name``."""
        for store in ("_parameters", "_buffers"):
            value = (self.__dict__.get(store) or {}).get(name)
            if value is not None:
                return value.detach()
        value = self.__dict__.get(name)
        return value.detach() if isinstance(value, torch.Tensor) else None

    def __repr__(self) -> str:
        return f"<{self.kind}>"


@cache
def _record_class(kind: str) -> type:
    return type(kind.rsplit(".", 1)[-1], (Record,), {"kind": kind})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module  # protocol 2's name for it
        if any(module == p or module.startswith(p + ".") for p in RECORDED):
            return _record_class(f"{module}.{name}")
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise DiffgatesError(
            f"the checkpoint refers to {module}.{name}, which is not part of a torchlogix or difflogic "
            "model; it is not read (only those libraries' layers and plain tensors are)."
        )


#: what torch.load takes as its pickle module: the restricted unpickler above (``load`` reads the
#: header records of the format torch.save wrote before torch 1.6)
_RESTRICTED = types.SimpleNamespace(
    __name__="diffgates-restricted", Unpickler=_Unpickler, load=lambda f, **kw: _Unpickler(f, **kw).load()
)


def read(path: str | Path):
    """The object ``torch.save`` wrote to ``path`` (a state dict, or a whole model as Records),
    read on the CPU with the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise DiffgatesError(f"no checkpoint at {path}.")
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (a pickle before torch 1.6)
        raise DiffgatesError(f"{path} is not a torch.save file (neither a zip archive nor a pickle).")
    try:
        with warnings.catch_warnings():  # the old format's check of each class's source, moot for Records
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", pickle_module=_RESTRICTED, weights_only=False)
    except (DiffgatesError, MemoryError):
        raise
    except Exception as e:  # a damaged pickle fails in whatever its bytes make the unpickler do
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DiffgatesError(f"{path} is not a readable torch.save file ({first.rstrip('.')}).") from e
