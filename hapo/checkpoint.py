"""Checkpoint files that hold plain data only and load with `torch.load(weights_only=True)`.

A checkpoint is a dict of tensors, numbers, strings, None, lists and dicts (plus the
tuples inside torch's own optimiser state dicts), so loading one runs no code. The state
that Python and NumPy keep in other types is converted here, exactly and both ways:

- NumPy arrays <-> tensors of the same dtype and shape;
- Python's `random` state (version, 625 words, gauss_next) <-> the words as an int64 tensor;
- NumPy bit-generator states (`Generator.bit_generator.state`, and the legacy global state
  as `np.random.get_state(legacy=False)`): the integers of their inner "state" dict
  <-> decimal strings, since PCG64's 128-bit state and increment do not fit an int64.

`FORMAT` numbers the layout; `read` refuses files of another format, files that are not
hapo checkpoints and broken files with one `CheckpointError` that names the file.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pickle
import random
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hapo.files import replaced_atomically

FORMAT = 2
# Keys every checkpoint of FORMAT has, and the type of each.
REQUIRED = {
    "format": int, "hapo_version": str, "config": dict, "spaces": dict, "iteration": int, "env_steps": int,
    "actors": list, "updaters": list, "critic": dict, "critic_update": dict, "rng": dict,
    "env": dict, "current": dict, "episodes": dict,
}
_INT64 = range(-(2**63), 2**63)
_BIT_GENERATOR = "bit_generator"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes zip archives  # the key that marks a NumPy bit-generator state dict


class CheckpointError(ValueError):
    """A file that cannot be loaded as a checkpoint of this run; the message names the file and why."""


# -- converting state to plain data and back ---------------------------------------------
def to_plain(value: Any, where: str = "value") -> Any:
    """`value` with NumPy arrays as tensors and bit-generator states made int64-safe.

    Dicts and lists are converted item by item; tensors, None, bools, strings, floats and
    int64-sized ints are kept. Anything else (a tuple, an object, a bigger int) raises
    TypeError naming `where`, so a state that does not round-trip is caught at save time.
    """
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True, order="C"))
    if isinstance(value, dict) and _BIT_GENERATOR in value:
        inner = {key: str(v) if _is_int(v) else to_plain(v, f"{where}.state.{key}") for key, v in value["state"].items()}
        return {**{key: to_plain(v, f"{where}.{key}") for key, v in value.items() if key != "state"}, "state": inner}
    if isinstance(value, dict):
        return {key: to_plain(v, f"{where}.{key}") for key, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return to_plain(value.item(), where)
    if value is None or isinstance(value, (torch.Tensor, bool, str, float)) or (_is_int(value) and value in _INT64):
        return value
    raise TypeError(f"{where} is {type(value).__name__} {value!r:.60}: checkpoints hold tensors, numbers, strings, lists and dicts")


def from_plain(value: Any) -> Any:
    """The inverse of `to_plain`: tensors become NumPy arrays, bit-generator states get their ints back."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict) and _BIT_GENERATOR in value:
        inner = {key: int(v) if isinstance(v, str) else from_plain(v) for key, v in value["state"].items()}
        return {**{key: from_plain(v) for key, v in value.items() if key != "state"}, "state": inner}
    if isinstance(value, dict):
        return {key: from_plain(v) for key, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    return value


def python_rng_state() -> dict:
    """`random.getstate()` as plain data: its 625 words as an int64 tensor."""
    version, words, gauss_next = random.getstate()
    return {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next}


def set_python_rng_state(state: dict) -> None:
    random.setstate((state["version"], tuple(state["words"].tolist()), state["gauss_next"]))


def numpy_rng_state() -> dict:
    """NumPy's legacy global state (`np.random.get_state`) as plain data."""
    return to_plain(np.random.get_state(legacy=False), "numpy random state")


def set_numpy_rng_state(state: dict) -> None:
    np.random.set_state(from_plain(state))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- files -------------------------------------------------------------------------------
def write(path: str | os.PathLike, checkpoint: dict) -> pathlib.Path:
    """Save `checkpoint` to `path` atomically (`hapo.files.replaced_atomically`): an interrupted
    save leaves the previous checkpoint whole.
    """
    path = pathlib.Path(path)
    check_plain(checkpoint)
    with replaced_atomically(path, "wb") as handle:
        torch.save(checkpoint, handle)
    return path


def read(path: str | os.PathLike) -> dict:
    """Load a checkpoint with `torch.load(weights_only=True)` and check it is one of ours in `FORMAT`.

    Raises:
      CheckpointError: the file is empty, truncated, corrupt, holds pickled objects, is not a
        hapo checkpoint (e.g. a model's bare state_dict) or has another format.
      OSError: the file cannot be opened (missing, a folder, no permission).
    """
    path = pathlib.Path(path)
    with path.open("rb") as handle:
        head = handle.read(4)
        if not head:
            raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
        handle.seek(0)
        try:
            with warnings.catch_warnings():
                # torch warns about files that were not written by torch.save before refusing them.
                warnings.simplefilter("ignore")
                data = torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file fails in the zip reader or the unpickler, in many ways
            raise CheckpointError(f"checkpoint {path} cannot be loaded: {_load_problem(err, head)}") from err
    if not isinstance(data, dict) or "format" not in data or "hapo_version" not in data:
        raise CheckpointError(f"checkpoint {path} is not a hapo checkpoint: it holds {_describe(data)}")
    found = data["format"]
    if not _is_int(found):
        raise CheckpointError(f"checkpoint {path} has a bad format number {found!r}")
    if found > FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {found}, newer than this hapo reads ({FORMAT}): "
            f"it was written by hapo {data['hapo_version']}; upgrade hapo to load it"
        )
    if found < FORMAT:
        raise CheckpointError(f"checkpoint {path} has the old format {found}; this hapo reads format {FORMAT} only")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    wrong = [f"{key} ({type(data[key]).__name__}, not {kind.__name__})" for key, kind in REQUIRED.items() if not isinstance(data[key], kind)]
    if wrong:
        raise CheckpointError(f"checkpoint {path} has values of the wrong type: {', '.join(wrong)}")
    if not all(isinstance(section, dict) for section in data["config"].values()):
        raise CheckpointError(f"checkpoint {path} has a config that is not a dict of sections")
    return data


@contextlib.contextmanager
def restoring(path: str | os.PathLike, part: str) -> Iterator[None]:
    """Turn the errors of restoring `part` from a damaged or mismatched checkpoint into a CheckpointError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: cannot restore {part}: {type(err).__name__}: {err}") from err


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first item that `torch.load(weights_only=True)` of a
    checkpoint should not have to accept: only tensors, None, bools, int64 ints, floats,
    strings, lists, tuples (torch's optimiser state dicts hold some) and dicts with str or
    int keys are plain.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r:.60}")
            check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
    elif _is_int(value):
        if value not in _INT64:
            raise TypeError(f"{where} is an int beyond int64: {value}")
    elif not (value is None or isinstance(value, (torch.Tensor, bool, float, str))):
        raise TypeError(f"{where} is {type(value).__name__}, not plain checkpoint data")


def _load_problem(err: Exception, head: bytes) -> str:
    text = str(err)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (
            f"it holds a pickled Python object ({refused.group(1)}), which a weights_only load refuses: "
            f"a checkpoint of hapo before checkpoint format {FORMAT}, or not a hapo checkpoint"
        )
    if head == _ZIP_MAGIC and not isinstance(err, pickle.UnpicklingError):
        return "the file is truncated or damaged (an interrupted copy?)"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = detail.group(1) if detail else (text.splitlines() or [type(err).__name__])[0]
    return f"the file is corrupt or not written by torch.save ({reason.strip()})"


def _describe(data: Any) -> str:
    if isinstance(data, dict):
        keys = list(data)
        shown = ", ".join(map(repr, keys[:5])) + (", ..." if len(keys) > 5 else "")
        return f"a dict with keys {shown} (a model's state_dict?)" if keys else "an empty dict"
    return f"a {type(data).__name__}"
