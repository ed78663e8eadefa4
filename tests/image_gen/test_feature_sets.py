"""Feature sets: names, shapes and count; group layout; per-feature drift loss; CFG weight formula."""

import pytest
import torch

from drifting_policy.drift import drift_loss_with_metrics, multi_feature_drift_loss
from image_gen.models.mae import MAE, MAEConfig
from image_gen.objectives.features import (
    FeatureConfig,
    cfg_neg_weight,
    count_features,
    extract_features,
    feature_drift_loss,
    to_groups,
)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return MAE(MAEConfig(width=8, blocks=(1, 1, 1, 1))).encoder.eval()


def test_feature_layout_matches_the_paper_sets(encoder):
    layout = count_features(encoder, torch.randn(3, 1, 32, 32), FeatureConfig())
    # maps 32, 16, 8: loc, mean, std, p2 mean/std, p4 mean/std = 7 each; map 4x4: no 4x4 patches -> 5
    assert len(layout) == 7 + 7 + 7 + 5 + 2
    assert layout["s0b0.loc"] == (1024, 8) and layout["s0b0.mean"] == (1, 8)
    assert layout["s0b0.p2m"] == (256, 8) and layout["s0b0.p4s"] == (64, 8)
    assert layout["s3b0.loc"] == (16, 64) and "s3b0.p4m" not in layout and layout["s3b0.p2s"] == (4, 64)
    assert layout["norm_x"] == (1, 1) and layout["global"] == (1, 1024)


def test_patch_statistics_are_exact(encoder):
    x = torch.randn(2, 1, 32, 32)
    feats = extract_features(encoder, x, FeatureConfig())
    fmap = encoder(x)[1][0]  # [2, 16, 16, 16]
    torch.testing.assert_close(feats["s1b0.mean"][:, 0], fmap.mean((2, 3)))
    patch = fmap[:, :, :4, :4].flatten(2)  # the first 4x4 window
    torch.testing.assert_close(
        feats["s1b0.p4s"][:, 0], patch.var(-1, unbiased=False).add(1e-6).sqrt(), atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(feats["norm_x"][:, 0, 0], x.square().mean((1, 2, 3)).add(1e-6).sqrt())


def test_raw_space_needs_no_encoder():
    feats = extract_features(None, torch.randn(2, 1, 32, 32), FeatureConfig(kinds=("global",)))
    assert list(feats) == ["global"]
    with pytest.raises(ValueError, match="need an encoder"):
        extract_features(None, torch.randn(2, 1, 32, 32), FeatureConfig())
    with pytest.raises(ValueError, match="unknown"):
        FeatureConfig(kinds=("loc", "pixels"))


def test_locations_become_groups():
    feature = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(6, 4, 5)  # B=2 groups x S=3, L=4, D=5
    grouped = to_groups(feature, num_groups=2)  # [B*L, S, D]
    assert grouped.shape == (8, 3, 5)
    torch.testing.assert_close(grouped[1 * 4 + 2, 1], feature[1 * 3 + 1, 2])  # group 1, location 2, sample 1


def test_cfg_weight_formula():
    alpha = torch.tensor([1.0, 2.0, 4.0])
    torch.testing.assert_close(
        cfg_neg_weight(alpha, num_gen=64, num_unc=16), torch.tensor([0.0, 63 / 16, 3 * 63 / 16])
    )
    with pytest.raises(ValueError, match="n_unc=0"):
        cfg_neg_weight(alpha, 8, 0)


def test_feature_loss_is_the_sum_of_independent_problems():
    g = torch.Generator().manual_seed(0)
    gen = {"a": torch.randn(2 * 4, 1, 6, generator=g), "b": torch.randn(2 * 4, 3, 5, generator=g)}
    pos = {"a": torch.randn(2 * 5, 1, 6, generator=g), "b": torch.randn(2 * 5, 3, 5, generator=g)}
    neg = {"a": torch.randn(3, 1, 6, generator=g), "b": torch.randn(3, 3, 5, generator=g)}
    weight = torch.tensor([0.5, 2.0])
    total, metrics = feature_drift_loss(gen, pos, neg, 2, weight, temperatures=(0.1, 0.5))
    expected = 0.0
    for name in gen:
        locations = gen[name].shape[1]
        neg_groups = to_groups(neg[name].repeat(2, 1, 1), 2)
        expected += drift_loss_with_metrics(
            to_groups(gen[name], 2),
            to_groups(pos[name], 2),
            neg_groups,
            neg_weight=weight.repeat_interleave(locations)[:, None],
            temperatures=(0.1, 0.5),
        )[0]
    torch.testing.assert_close(total, expected)
    assert "b/drift_rms/tau_0.1" in metrics
    # With one location everywhere and a scalar weight it is exactly the shared multi-feature loss.
    single = {k: v[:, :1] for k, v in gen.items()}
    ref, _ = multi_feature_drift_loss(
        {k: to_groups(v, 2) for k, v in single.items()},
        {k: to_groups(v[:, :1], 2) for k, v in pos.items()},
        {k: to_groups(v[:, :1].repeat(2, 1, 1), 2) for k, v in neg.items()},
        neg_weight=1.5,
        temperatures=(0.2,),
    )
    ours, _ = feature_drift_loss(
        single,
        {k: v[:, :1] for k, v in pos.items()},
        {k: v[:, :1] for k, v in neg.items()},
        2,
        torch.tensor([1.5, 1.5]),
        temperatures=(0.2,),
    )
    torch.testing.assert_close(ours, ref)
