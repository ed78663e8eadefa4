"""Metrics on known inputs: identical sets score ~0, shifted sets more; Frechet formula; P/R; accuracy."""

import copy

import pytest
import torch

from image_gen.evaluation.metrics import (
    class_accuracy,
    frechet_distance,
    inception_features,
    kernel_inception_distance,
    load_inception,
    nearest_train_distance,
    precision_recall,
)


def gaussian(n=2000, d=8, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_frechet_distance_identical_and_shifted():
    x = gaussian()
    assert abs(frechet_distance(x, x)) < 1e-6
    # Same covariance, mean shifted by 1 in each of 8 dims: FD = |dmu|^2 = 8 (+ sampling noise)
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, abs=1e-6)
    assert frechet_distance(gaussian(seed=0), gaussian(seed=1)) < 0.1
    assert frechet_distance(gaussian(seed=0), 2.0 * gaussian(seed=1)) > 5.0  # variance x4: tr term 8*(1+4-4)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_shift():
    same = kernel_inception_distance(gaussian(seed=0), gaussian(seed=1), num_subsets=5, subset_size=300)
    small = kernel_inception_distance(
        gaussian(seed=0), gaussian(shift=0.5, seed=1), num_subsets=5, subset_size=300
    )
    large = kernel_inception_distance(
        gaussian(seed=0), gaussian(shift=2.0, seed=1), num_subsets=5, subset_size=300
    )
    assert abs(same) < 0.05 and small > 0.1 and large > small


def test_precision_recall_extremes():
    x = gaussian(n=500)
    assert precision_recall(x, x) == (1.0, 1.0)
    precision, recall = precision_recall(x, gaussian(n=500, shift=50.0, seed=1))
    assert precision == 0.0 and recall == 0.0
    collapsed = x[:1].repeat(500, 1) + 1e-3 * gaussian(n=500, seed=2)  # mode collapse: precise, no recall
    precision, recall = precision_recall(x, collapsed)
    assert precision == 1.0 and recall < 0.1


def test_class_accuracy_and_nearest_train_distance():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert class_accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    train = torch.zeros(3, 1, 2, 2)
    train[1] += 1.0
    distances = nearest_train_distance(torch.stack([train[1], train[1] + 0.5]), train)
    torch.testing.assert_close(distances, torch.tensor([0.0, 1.0]))
    # image-sized rows, where cdist's matrix-product path is inexact: copies sit at exactly 0, and every
    # distance agrees with the direct computation
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(300, 1, 32, 32, generator=generator) * 2 - 1
    samples = torch.cat([images[:50], torch.rand(50, 1, 32, 32, generator=generator) * 2 - 1])
    distances = nearest_train_distance(samples, images, batch_size=64)
    assert torch.equal(distances[:50], torch.zeros(50))
    direct = (samples.flatten(1)[:, None] - images.flatten(1)[None]).norm(dim=-1).min(dim=1).values
    torch.testing.assert_close(distances, direct)


def test_inception_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights cannot be downloaded offline"):
        load_inception(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def random_inception():
    """A randomly initialised torchvision Inception-v3: the offline stand-in for the real weights."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    return inception_v3(weights=None, aux_logits=True, init_weights=True).eval()


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # [n, 1, 32, 32]


def test_inception_state_dict_file_gives_the_networks_pool3_features(random_inception, tmp_path):
    path = tmp_path / "inception_v3.pth"
    torch.save({f"module.{k}": v for k, v in random_inception.state_dict().items()}, path)  # DataParallel
    model = load_inception(path)
    images = _images(3, seed=0)
    feats = inception_features(model, images, batch_size=2)  # two batches
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64
    # the same network by hand: grey -> RGB, bilinear resize to 299, pool3 (the input to fc)
    pooled = {}
    hook = random_inception.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("x", o))
    x = torch.nn.functional.interpolate(images.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear")
    with torch.no_grad():
        random_inception(x)
    hook.remove()
    torch.testing.assert_close(feats.float(), pooled["x"].flatten(1), rtol=1e-4, atol=1e-5)


def test_inception_torchscript_detector_gets_uint8_range_299px_input(random_inception, tmp_path):
    class Detector(torch.nn.Module):
        """Mimics the clean-fid / StyleGAN detector: images in [0, 255], features when asked."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            if x.shape[1:] != (3, 299, 299) or bool(x.min() < 0) or bool(x.max() > 255):
                raise ValueError("detector expects [N, 3, 299, 299] in [0, 255]")
            return self.net(x / 127.5 - 1.0)

    net = copy.deepcopy(random_inception)
    net.fc = torch.nn.Identity()
    traced = torch.jit.trace(net, torch.zeros(1, 3, 299, 299))
    path = tmp_path / "detector.pt"
    torch.jit.script(Detector(traced)).save(str(path))
    model = load_inception(path)
    assert isinstance(model, torch.jit.ScriptModule)
    a, b = _images(2, seed=1), _images(2, seed=2)
    feats = inception_features(model, torch.cat([a, b]))
    assert feats.shape == (4, 2048) and not torch.equal(feats[:2], feats[2:])


def test_inception_loader_refuses_a_file_that_is_not_inception(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="not an Inception-v3 state dict"):
        load_inception(path)
