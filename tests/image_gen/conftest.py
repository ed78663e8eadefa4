import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from fake_fmnist import write_fake_fmnist  # noqa: E402

from drifting_policy.common.entry import TRACEBACK_ENV  # noqa: E402


@pytest.fixture(autouse=True)
def user_errors_raise(monkeypatch):
    """Console mains called in-process raise their user errors (as a library call does) instead of printing
    one line and exiting 2; the tests of that one-line report run real processes without this variable."""
    monkeypatch.setenv(TRACEBACK_ENV, "1")


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return write_fake_fmnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def mae_path(tmp_path_factory):
    """A tiny random MAE feature encoder saved once (width 4, one block per stage)."""
    from image_gen.models.mae import MAE, MAEConfig, save_mae

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mae") / "mae.safetensors"
    save_mae(MAE(MAEConfig(width=4, blocks=(1, 1))), path)
    return str(path)
