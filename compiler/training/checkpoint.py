"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dictionary of tensors, containers and numbers (no
pickled objects, so the safe loader reads it):

``format``  ``FORMAT``; ``netc``: the version that wrote it;
``network``, ``spec`` (path and text of the root spec file), ``params`` (the
network's resolved parameters), ``input_shape``;
``model`` (the training build's ``state_dict``, aux heads included),
``optimizer``, ``scheduler``; ``epoch`` (the last one finished, from 1),
``best_acc`` and ``best_epoch``; ``rng`` (torch, numpy and Python generator
states); ``config`` (the training options, for the record).

Writes go to a temporary file in the same folder, flushed and fsynced, then
``os.replace`` puts it over the old one: a save killed part-way leaves the
previous checkpoint as it was.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compiler.training import TrainingError

FORMAT = "netc-train-1"
REQUIRED = ("format", "network", "model", "optimizer", "epoch", "rng")
# What torch.load raises on a file that is not a (safe) checkpoint.
UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError)


def netc_version() -> str:
    try:
        return version("netc")
    except PackageNotFoundError:
        return "unknown"


def rng_state() -> dict[str, Any]:
    """Every generator a training step draws from, as tensors and lists."""
    _kind, raw_keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    keys = np.asarray(raw_keys)
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write(checkpoint: dict[str, Any], f) -> None:
    torch.save(checkpoint, f)


def save(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file renamed over ``path``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint ``save`` wrote; anything else is a ``TrainingError``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainingError(f"checkpoint {path}: cannot be read ({first})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise TrainingError(f"checkpoint {path}: not a netc training checkpoint ({FORMAT})")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise TrainingError(f"checkpoint {path}: incomplete, no {', '.join(missing)}")
    return checkpoint


def model_state(path: str | Path, network: str) -> dict[str, torch.Tensor]:
    """The training build's weights from a checkpoint of ``network`` (or a bare state_dict)."""
    return model_and_config(path, network)[0]


def model_and_config(
    path: str | Path, network: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``model_state``, and the training options the checkpoint records (its ``config``;
    {} for a bare state_dict), from one read of the file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainingError(f"checkpoint {path}: cannot be read ({first})") from None
    config: dict[str, Any] = {}
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        if raw.get("network") != network:
            raise TrainingError(
                f"checkpoint {path} is of network {raw.get('network')}, not {network}"
            )
        if isinstance(raw.get("config"), dict):
            config = raw["config"]
        raw = raw["model"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise TrainingError(f"checkpoint {path}: neither a netc checkpoint nor a state_dict")
    return raw, config
