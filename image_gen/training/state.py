"""train_state.safetensors: everything an exact resume needs, as named tensors plus JSON under the
``resume_state`` metadata key; no pickle, so loading a checkpoint cannot run code.

Tensors: ``model.*`` and ``ema.*`` (full, also under FSDP), ``generator`` (the step randomness),
``optimizer.<param index>.<name>`` (AdamW moments, drifting_policy.common.io.flatten_optimizer) and the
objective's own (``queue.*``, ``stream.*``, ...). Metadata: ``step``, ``train_seconds`` and
``train_cpu_seconds`` (wall and CPU time in training steps), ``optimizer`` (param groups and scalars),
``config`` (the run's settings, for the run-folder check) and the objective's scalars. Files written by
the separate image trainers before they became one loop have the same layout and load unchanged (without
``config``).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from drifting_policy.common.io import save_weights
from image_gen.weight_files import check_kind, read_weights

STATE_KEY = "resume_state"
# train states are replaced whole (atomic writes): a crash cannot damage one, a copy or an edit can
STATE_HINT = "expected the train_state.safetensors of an image run; restore it, or start a new run_name"


def save_train_state(state: tuple[dict[str, Tensor], dict], path: str | Path) -> None:
    """(named tensors, JSON-able metadata) as one safetensors file, written atomically."""
    save_weights(state[0], path, {STATE_KEY: state[1]})


def read_state_metadata(path: str | Path) -> dict:
    """The JSON metadata of a resume state without its tensors (step, config, ...); ValueError naming the
    file if it is damaged or not a resume state."""
    return check_kind(path, STATE_KEY, "a resume state", STATE_HINT)[STATE_KEY]


def load_train_state(path: str | Path) -> tuple[dict[str, Tensor], dict]:
    """(tensors on CPU, metadata) of a file written by :func:`save_train_state`."""
    tensors, metadata = read_weights(path, STATE_KEY, "a resume state", STATE_HINT)
    return tensors, metadata[STATE_KEY]
