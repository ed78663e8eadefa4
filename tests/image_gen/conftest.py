import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_fmnist import write_fake_fmnist  # noqa: E402


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return write_fake_fmnist(tmp_path_factory.mktemp("fmnist"))
