"""Reading the image side's safetensors files so that a wrong file gets one line, not a traceback.

Every file the image trainers write says what it is in its metadata (``dit_config``: a generator,
``mae_config``, ``vae_config``, ``classifier_config``, ``resume_state``). A file that is damaged, is no
safetensors file, or is another kind (a policy checkpoint, another objective's export) is a ValueError that
names the file, what it is and what was expected; the loaders in image_gen.models, image_gen.sampling and
image_gen.training.state read through here.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor, nn

from drifting_policy.common.io import read_raw_metadata

# metadata key -> what a file holding it is (first match wins: the more specific kinds first)
KINDS = (
    ("resume_state", "a resume state (train_state.safetensors of an image run)"),
    ("dit_config", "an image generator (model.safetensors)"),
    ("mae_config", "an MAE encoder (mae.safetensors)"),
    ("vae_config", "a VAE (vae.safetensors)"),
    ("classifier_config", "an evaluator (evaluator.safetensors)"),
    ("policy_name", "a drifting-policy checkpoint (drifting-train)"),
)


def _decode(value: str):
    try:
        return json.loads(value)
    except ValueError:  # metadata written by others (policy checkpoints) holds plain strings too
        return value


def read_metadata(path: str | Path, hint: str = "") -> dict:
    """The JSON-decoded metadata of a safetensors file; ValueError naming the file (and ``hint``, the file to
    pass instead) if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found" + (" (a folder)" if path.is_dir() else ""))
    raw = read_raw_metadata(path, hint or "pass a file written by image_gen")
    return {key: _decode(value) for key, value in raw.items()}


def describe(metadata: dict) -> str:
    """What a file with this metadata is, in words."""
    for key, kind in KINDS:
        if key in metadata:
            return kind
    return f"a safetensors file of unknown kind (metadata keys {sorted(metadata)[:6]})"


def check_kind(path: str | Path, key: str, expected: str, hint: str) -> dict:
    """The metadata of ``path`` if it holds ``key``; else ValueError: `<path> is <kind>, not <expected>;
    <hint>`. ``hint`` says which file to pass instead."""
    metadata = read_metadata(path, hint)
    if key not in metadata:
        raise ValueError(f"{path} is {describe(metadata)}, not {expected}; {hint}")
    return metadata


def read_weights(path: str | Path, key: str, expected: str, hint: str) -> tuple[dict[str, Tensor], dict]:
    """(tensors on CPU, metadata) of a file that must hold metadata ``key`` (see :func:`check_kind`)."""
    metadata = check_kind(path, key, expected, hint)
    try:
        tensors = load_file(str(path))
    except Exception as error:
        raise ValueError(f"{path}: its tensors cannot be read ({error}); the file is damaged: {hint}"
                         ) from error
    return tensors, metadata


def load_into(module: nn.Module, tensors: dict[str, Tensor], path: str | Path, hint: str) -> None:
    """``module.load_state_dict(tensors)``, a mismatch being a ValueError naming ``path``."""
    try:
        module.load_state_dict(tensors)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{path}: its weights do not fit the network its metadata describes ({first}); the "
                         f"file is damaged or was edited: {hint}") from error


def build_config(cls, values, path: str | Path, key: str):
    """``cls(**values)`` for the config stored under metadata ``key``, a foreign field being a ValueError."""
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{path}: its {key} does not fit {cls.__name__} ({error}); the file was written by "
                         "another version of image_gen") from error
