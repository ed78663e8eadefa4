"""MAE encoder: stage shapes, 2x2 masking at ratio 0.5, loss only on the masked region."""

import pytest
import torch

from image_gen.models.mae import MAE, MAEConfig


def tiny(**overrides):
    torch.manual_seed(0)
    return MAE(MAEConfig(**{"width": 8, "blocks": (2, 1, 1, 1), **overrides}))


def test_encoder_stage_maps():
    maps = tiny().encoder(torch.randn(2, 1, 32, 32))
    assert [len(stage) for stage in maps] == [1, 1, 1, 1]  # 2 blocks -> "every 2nd" and "last" coincide
    assert [tuple(stage[-1].shape) for stage in maps] == [
        (2, 8, 32, 32),
        (2, 16, 16, 16),
        (2, 32, 8, 8),
        (2, 64, 4, 4),
    ]
    three = tiny(blocks=(3, 1, 1, 1)).encoder(torch.randn(1, 1, 32, 32))
    assert len(three[0]) == 2  # after block 2 and after block 3


def test_mask_hides_whole_2x2_patches_at_ratio_half():
    model = tiny()
    mask = model.random_mask(torch.zeros(64, 1, 32, 32), torch.Generator().manual_seed(0))
    assert mask.shape == (64, 1, 32, 32)
    blocks = mask.unfold(2, 2, 2).unfold(3, 2, 2)  # [64, 1, 16, 16, 2, 2]
    assert (blocks.amax((-1, -2)) == blocks.amin((-1, -2))).all()  # constant within each patch
    assert abs(mask.mean().item() - 0.5) < 0.02


def test_loss_counts_only_masked_pixels(monkeypatch):
    model = tiny()
    x = torch.randn(4, 1, 32, 32)
    mask = model.random_mask(x, torch.Generator().manual_seed(0))
    # A "reconstruction" that is exact where hidden and garbage where visible must cost nothing.
    monkeypatch.setattr(model, "random_mask", lambda *_: mask)
    monkeypatch.setattr(model, "reconstruct", lambda _: x * mask + 100.0 * (1 - mask))
    loss, _ = model.loss(x)
    assert loss.item() == 0.0
    monkeypatch.setattr(model, "reconstruct", lambda _: x + mask)  # error 1 on hidden pixels only
    assert model.loss(x)[0].item() == pytest.approx(1.0)


def test_masked_input_is_hidden_from_the_encoder(monkeypatch):
    model = tiny()
    x = torch.randn(2, 1, 32, 32)
    mask = model.random_mask(x, torch.Generator().manual_seed(1))
    seen = {}
    monkeypatch.setattr(model, "random_mask", lambda *_: mask)
    original = model.reconstruct
    monkeypatch.setattr(
        model, "reconstruct", lambda inp: seen.setdefault("x", inp) is not None and original(inp)
    )
    model.loss(x)
    assert seen["x"][mask.expand_as(x) > 0].abs().max() == 0


def test_training_lowers_the_masked_loss():
    model = tiny()
    x = torch.randn(1, 1, 8, 8).repeat_interleave(4, -1).repeat_interleave(4, -2).repeat(8, 1, 1, 1)  # smooth
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    first = None
    for _ in range(30):
        loss, _ = model.loss(x, generator)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_latent_input_maps_and_stage_count_checks():
    maps = tiny(in_channels=4, input_size=8, blocks=(2, 2, 2)).encoder(torch.randn(2, 4, 8, 8))
    assert [tuple(stage[-1].shape) for stage in maps] == [(2, 8, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    model = tiny(in_channels=4, input_size=8, blocks=(1, 1, 1))
    assert model.reconstruct(torch.randn(2, 4, 8, 8)).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="input_size must be a multiple of 16; use fewer stages"):
        MAEConfig(input_size=8, blocks=(1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="input_size=9 is not divisible by mask_patch=2"):
        MAEConfig(input_size=9, blocks=(1,))
