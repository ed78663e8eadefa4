import pytest
import torch
from torch import nn

from drifting_policy.model import ObsEncoder
from drifting_policy.model.obs_encoder import SpatialSoftmax

LOW_DIM = {"obs": {"keypoint": {"shape": (3, 2), "type": "low_dim"},
                   "agent_pos": {"shape": (2,), "type": "low_dim"}}}
MIXED = {"obs": {"image": {"shape": (40, 40, 3), "type": "rgb"},
                 "wrist": {"shape": (36, 36, 3), "type": "rgb"},
                 "agent_pos": {"shape": (2,), "type": "low_dim"}}}


def test_low_dim_is_concatenation_in_sorted_key_order():
    encoder = ObsEncoder(LOW_DIM, obs_horizon=2)
    obs = {"keypoint": torch.randn(4, 2, 3, 2), "agent_pos": torch.randn(4, 2, 2)}
    out = encoder(obs)
    assert encoder.feature_dim == 8 and encoder.output_dim == 16 and out.shape == (4, 16)
    expected = torch.cat([obs["agent_pos"], obs["keypoint"].flatten(2)], dim=-1).flatten(1)  # [B, To * 8]
    assert torch.equal(out, expected)
    assert not list(encoder.parameters())


def test_mixed_rgb_and_low_dim_shapes_and_group_norm():
    torch.manual_seed(0)
    encoder = ObsEncoder(MIXED, obs_horizon=2, image_feature_dim=8, crop_shape=None, num_keypoints=4)
    obs = {"image": torch.rand(3, 2, 40, 40, 3) * 2 - 1, "wrist": torch.rand(3, 2, 36, 36, 3) * 2 - 1,
           "agent_pos": torch.randn(3, 2, 2)}
    out = encoder(obs)
    assert encoder.feature_dim == 8 + 8 + 2 and out.shape == (3, 36)
    assert torch.equal(out.view(3, 2, 18)[:, :, 16:], obs["agent_pos"])  # low-dim after the rgb features
    assert not any(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in encoder.modules())
    out.sum().backward()
    assert encoder.image_encoders["image"].trunk[0].weight.grad.abs().sum() > 0


def test_random_crop_in_train_centre_crop_in_eval():
    meta = {"obs": {"image": {"shape": (44, 44, 3), "type": "rgb"}}}
    encoder = ObsEncoder(meta, obs_horizon=1, image_feature_dim=8, crop_shape=(36, 36), num_keypoints=4)
    image_encoder = encoder.image_encoders["image"]
    images = torch.rand(16, 44, 44, 3)
    crops = image_encoder.crop(images, torch.Generator().manual_seed(0))
    assert crops.shape == (16, 36, 36, 3)
    windows = [next((top, left) for top in range(9) for left in range(9)
                    if torch.equal(crops[i], images[i, top:top + 36, left:left + 36])) for i in range(16)]
    assert len(set(windows)) > 1  # independent windows per image
    same = image_encoder.crop(images, torch.Generator().manual_seed(0))
    assert torch.equal(crops, same)
    encoder.eval()
    assert torch.equal(image_encoder.crop(images, None), images[:, 4:40, 4:40])
    obs = {"image": images.view(16, 1, 44, 44, 3)}
    assert torch.equal(encoder(obs), encoder(obs))


def test_spatial_softmax_finds_the_peak():
    pool = SpatialSoftmax(in_channels=1, num_keypoints=1)
    with torch.no_grad():
        pool.keypoints.weight.fill_(1.0)
        pool.keypoints.bias.zero_()
    features = torch.zeros(1, 1, 5, 5)
    features[0, 0, 4, 0] = 100.0  # bottom-left corner: x = -1, y = +1
    assert torch.allclose(pool(features), torch.tensor([[-1.0, 1.0]]), atol=1e-4)


def test_errors_name_key_and_shape():
    encoder = ObsEncoder(LOW_DIM, obs_horizon=2)
    with pytest.raises(ValueError, match="observation key 'keypoint' missing"):
        encoder({"agent_pos": torch.randn(4, 2, 2)})
    with pytest.raises(ValueError, match=r"'keypoint' has shape \[4, 2, 2, 3\]; expected \[4, 2, 3, 2\]"):
        encoder({"agent_pos": torch.randn(4, 2, 2), "keypoint": torch.randn(4, 2, 2, 3)})
    with pytest.raises(ValueError, match="rgb key 'image' has shape"):
        ObsEncoder({"obs": {"image": {"shape": (3, 32, 32), "type": "rgb"}}}, obs_horizon=2)
    with pytest.raises(ValueError, match=r"crop_shape=\(38, 38\) does not fit rgb key 'wrist'"):
        ObsEncoder(MIXED, obs_horizon=2, crop_shape=(38, 38))
    with pytest.raises(ValueError, match=r"crop_shape=\(32, 32\) does not fit.*1x1 ResNet"):
        ObsEncoder(MIXED, obs_horizon=2, crop_shape=(32, 32))
    with pytest.raises(ValueError, match="type"):
        ObsEncoder({"obs": {"depth": {"shape": (2,), "type": "depth"}}}, obs_horizon=2)


def test_low_dim_noise_only_in_training_with_the_configured_std():
    meta = {"obs": {"pos": {"shape": (3,), "type": "low_dim"}}}
    encoder = ObsEncoder(meta, obs_horizon=2, low_dim_noise=0.05)
    obs = {"pos": torch.linspace(-1, 1, 4000 * 6).reshape(4000, 2, 3)}
    encoder.train()
    deviation = encoder(obs, torch.Generator().manual_seed(0)) - obs["pos"].reshape(4000, 6)
    assert abs(deviation.std().item() - 0.05) < 0.002 and abs(deviation.mean().item()) < 0.002
    again = encoder(obs, torch.Generator().manual_seed(0)) - obs["pos"].reshape(4000, 6)
    assert torch.equal(deviation, again)  # the generator drives the noise: reproducible batches
    encoder.eval()
    assert torch.equal(encoder(obs), obs["pos"].reshape(4000, 6))  # evaluation sees the true state
    with pytest.raises(ValueError, match="low_dim_noise"):
        ObsEncoder(meta, obs_horizon=2, low_dim_noise=-0.1)
