"""Normalizer: [-1, 1] range, round trip, constant dims, images, state_dict / safetensors round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from drifting_policy.policy.normalizer import Normalizer


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    keypoint = rng.uniform(-50, 600, size=(300, 9, 2)).astype(np.float32)
    action = rng.uniform(10, 500, size=(300, 2)).astype(np.float32)
    action[:, 1] = 7.0  # a constant dimension
    return {"keypoint": keypoint, "action": action}


def test_range_and_round_trip():
    data = _data()
    norm = Normalizer().fit(data)
    y = norm.normalize("keypoint", torch.from_numpy(data["keypoint"]))
    assert y.shape == (300, 9, 2) and y.dtype == torch.float32
    assert torch.allclose(y.amin(0), torch.full((9, 2), -1.0), atol=1e-6)
    assert torch.allclose(y.amax(0), torch.full((9, 2), 1.0), atol=1e-6)
    back = norm.unnormalize("keypoint", y)
    assert torch.allclose(back, torch.from_numpy(data["keypoint"]), atol=1e-4)


def test_constant_dim_only_shifted():
    norm = Normalizer().fit(_data())
    y = norm.normalize("action", _data()["action"])
    assert torch.all(y[:, 1] == 0.0)  # 7 -> 0, scale 1
    assert norm.params["action"].scale[1].item() == 1.0
    assert torch.allclose(norm.normalize("action", torch.tensor([0.0, 8.5]))[1], torch.tensor(1.5))


def test_any_leading_shape():
    norm = Normalizer().fit(_data())
    x = torch.rand(4, 3, 16, 2) * 400
    y = norm.normalize("action", x)
    assert y.shape == x.shape
    assert torch.allclose(norm.normalize("action", x[1, 2]), y[1, 2])
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 2\]"):
        norm.normalize("action", torch.zeros(4, 3))


def test_images_fixed_map():
    images = np.array([[0, 255], [128, 51]], dtype=np.uint8).reshape(1, 2, 2, 1).repeat(3, -1)
    norm = Normalizer().fit({"image": images[:, :1]}, image_keys=("wrist_image",))
    for key in ("image", "wrist_image"):
        y = norm.normalize(key, torch.from_numpy(images))  # data-independent map
        assert y.dtype == torch.float32
        assert y.min().item() == -1.0 and y.max().item() == 1.0
        assert torch.allclose(norm.unnormalize(key, y), torch.from_numpy(images).float(), atol=1e-4)


def test_state_dict_round_trip_into_unfitted(tmp_path):
    norm = Normalizer().fit(_data(), image_keys=("image",))
    path = tmp_path / "norm.safetensors"
    save_file(norm.state_dict(), str(path))
    restored = Normalizer()  # unfitted, as inside a freshly built policy
    restored.load_state_dict(load_file(str(path)))
    assert sorted(restored.keys()) == ["action", "image", "keypoint"]
    x = torch.rand(5, 9, 2) * 500
    assert torch.equal(restored.normalize("keypoint", x), norm.normalize("keypoint", x))

    class Policy(torch.nn.Module):  # nested, as the policies hold it
        def __init__(self):
            super().__init__()
            self.normalizer = Normalizer()
            self.linear = torch.nn.Linear(2, 2)

    source = Policy()
    source.normalizer.fit(_data(1))
    target = Policy()
    target.load_state_dict(source.state_dict())  # strict
    a = torch.rand(3, 2)
    assert torch.equal(target.normalizer.normalize("action", a), source.normalizer.normalize("action", a))


def test_errors():
    with pytest.raises(RuntimeError, match="before fit"):
        Normalizer().normalize("action", torch.zeros(2))
    norm = Normalizer().fit(_data())
    with pytest.raises(KeyError, match="fitted keys"):
        norm.normalize("agent_pos", torch.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer().fit({"action": np.array([[np.nan, 1.0]])})
    with pytest.raises(ValueError, match="N >= 1"):
        Normalizer().fit({"action": np.zeros((0, 2))})
