"""DiT generator: shapes, adaLN-zero identity at init, conditioning on class/alpha/style, size table."""

import pytest
import torch

from image_gen.models.dit import DIT_MODELS, DiT, DiTConfig


def tiny(**overrides):
    torch.manual_seed(0)
    return DiT(DiTConfig(**{"size": "DiT-T/4", "num_style_tokens": 4, "style_codebook_size": 8, **overrides}))


def randomise_zero_inits(model):
    """Give the zero-initialised adaLN layers random weights, as training would."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adaLN_modulation" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def inputs(batch=4, channels=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=g), torch.arange(batch) % 10, torch.ones(batch)


def test_output_shape_pixel_and_latent():
    noise, labels, alpha = inputs()
    assert tiny()(noise, labels, alpha).shape == (4, 1, 32, 32)
    latent = tiny(in_channels=4, input_size=8, size="DiT-T/2")
    noise, labels, alpha = inputs(channels=4, size=8)
    assert latent(noise, labels, alpha, latent.sample_style(4)).shape == (4, 4, 8, 8)


def test_adaln_zero_blocks_start_as_identity():
    model = tiny()
    x = torch.randn(2, model.config.num_in_context + model.config.grid_size**2, model.config.hidden_size)
    c = torch.randn(2, model.config.hidden_size)
    for block in model.blocks:
        torch.testing.assert_close(block(x, c, model.rope_cos, model.rope_sin), x, rtol=0, atol=0)


def test_output_depends_on_noise_at_init():
    model = tiny()
    noise, labels, alpha = inputs()
    out = model(noise, labels, alpha)
    assert out[0].std() > 0 and not torch.allclose(out[0], out[1])  # not a constant image (GroupNorm-safe)


@pytest.mark.parametrize("change", ["label", "alpha", "style"])
def test_conditioning_changes_the_output(change):
    model = tiny()
    randomise_zero_inits(model)
    noise, labels, alpha = inputs()
    style = model.sample_style(4, torch.Generator().manual_seed(0))
    base = model(noise, labels, alpha, style)
    if change == "label":
        labels = (labels + 1) % 10
    elif change == "alpha":
        alpha = alpha * 2.5
    else:
        style = (style + 1) % model.config.style_codebook_size
    assert (model(noise, labels, alpha, style) - base).abs().mean() > 1e-4


def test_generate_is_reproducible_with_a_generator():
    model = tiny()
    labels = torch.arange(6) % 10
    a = model.generate(labels, 1.5, torch.Generator().manual_seed(3))
    b = model.generate(labels, 1.5, torch.Generator().manual_seed(3))
    c = model.generate(labels, 1.5, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_paper_sizes_have_the_paper_parameter_counts():
    with torch.device("meta"):
        b2 = DiT(DiTConfig(size="DiT-B/2", in_channels=4, input_size=32, num_classes=1000, num_in_context=16))
        l2 = DiT(DiTConfig(size="DiT-L/2", in_channels=4, input_size=32, num_classes=1000, num_in_context=16))
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert 120 < count(b2) < 145  # paper Table 8: 133M
    assert 430 < count(l2) < 490  # paper: 463M
    assert {"DiT-B/2", "DiT-L/2", "DiT-B/16", "DiT-L/16"} <= set(DIT_MODELS)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="size='DiT-X'"):
        DiTConfig(size="DiT-X")
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        DiTConfig(size="DiT-T/4", input_size=30)
