"""Settings shared by every test."""

import os

import pytest
import torch

# Without a GPU, Triton kernels (drifting_policy/drift/fused.py) run in Triton's interpreter, which must be
# chosen before anything imports triton: here, before any test module is collected.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def one_thread():
    """The CPUs are few and often shared: one thread is faster and steadier than two fighting for them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def train_defaults_registered():
    """Tests compose configs/train.yaml and bench.yaml with hydra's API, as drifting-train does after it
    registers TrainConfig's defaults."""
    from drifting_policy.training.setup import register_train_defaults

    register_train_defaults()
