"""ConvNeXt-V2 feature encoder: layout of the MAE's feature sets, weights by path, frozen, differentiable."""

import pytest
import torch

pytest.importorskip("timm", reason="timm not installed: pip install 'drifting-policy[convnext]'")

from image_gen.models.convnext import ConvNeXtV2Features, StackedEncoders  # noqa: E402
from image_gen.models.mae import MAE, MAEConfig  # noqa: E402
from image_gen.objectives.features import FeatureConfig, extract_features  # noqa: E402


@pytest.fixture(scope="module")
def atto():
    torch.manual_seed(0)
    return ConvNeXtV2Features("convnextv2_atto", input_size=64)


def test_stages_follow_the_mae_layout(atto):
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    stages = atto(x)
    depths = [len(stage.blocks) for stage in atto.model.stages]  # atto: [2, 2, 6, 2]
    assert [len(maps) for maps in stages] == [(d + 1) // 2 for d in depths]  # every 2nd block, last kept
    sizes = [maps[-1].shape[-1] for maps in stages]
    channels = [maps[-1].shape[1] for maps in stages]
    assert sizes == [16, 8, 4, 2] and channels == [info["num_chs"] for info in atto.model.feature_info]
    stacked = StackedEncoders(MAE(MAEConfig(width=4, blocks=(1, 1))).encoder, atto)
    feats = extract_features(stacked, x, FeatureConfig(kinds=("stats",)))
    n_maps = 2 + sum(len(maps) for maps in stages)  # MAE: one map per stage, then the ConvNeXt stages
    assert len(feats) == 2 * n_maps and f"s{2 + len(stages) - 1}b0.mean" in feats


def test_weights_load_by_path_and_mismatch_is_reported(atto, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "atto.safetensors"
    save_file({k: v.contiguous() for k, v in atto.model.state_dict().items()}, str(path))
    torch.manual_seed(1)  # a different random init, then the file's weights
    loaded = ConvNeXtV2Features("convnextv2_atto", weights_path=path, input_size=64)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(x)[-1][-1], atto(x)[-1][-1])
    with pytest.raises(ValueError, match="does not fit timm convnextv2_femto"):
        ConvNeXtV2Features("convnextv2_femto", weights_path=path)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        ConvNeXtV2Features("convnextv2_atto", weights_path=tmp_path / "missing.safetensors")


def test_frozen_but_differentiable_in_its_input(atto):
    assert not any(p.requires_grad for p in atto.parameters())
    atto.train()
    assert not atto.training  # stays in eval mode inside a training module
    x = torch.zeros(2, 1, 32, 32, requires_grad=True)
    atto(x)[-1][-1].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
