"""Settings shared by every test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The CPUs are few and often shared: one thread is faster and steadier than two fighting for them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
