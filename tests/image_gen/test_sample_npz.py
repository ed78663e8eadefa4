"""image-gen-sample --npz: ADM/torch-fidelity layout, deterministic across batch sizes and world sizes."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drifting_policy.common.io import save_weights
from image_gen.distributed import DistInfo
from image_gen.evaluation.npz import rank_slice
from image_gen.models.dit import DiT, DiTConfig
from image_gen.models.flow_dit import MODEL_KIND, FlowDiT
from image_gen.sample import main as sample_main

REPO = Path(__file__).resolve().parents[2]
CONFIG = DiTConfig(size="DiT-T/4", num_in_context=2, num_style_tokens=4)


def write_checkpoint(path: Path, kind: str = "drifting") -> Path:
    """A randomly initialised generator in image-gen-train's (or image-gen-train-flow's) file format."""
    torch.manual_seed(0)
    model = FlowDiT(CONFIG) if kind == MODEL_KIND else DiT(CONFIG)
    torch.nn.init.normal_(model.final_layer.adaLN_modulation[-1].weight, std=0.02)  # make the class matter
    meta = {"dit_config": dataclasses.asdict(CONFIG), "step": 0, "space": "pixel"}
    if kind == MODEL_KIND:
        meta["model_kind"] = MODEL_KIND
    save_weights({f"ema.{k}": v for k, v in model.state_dict().items()}, path, meta)
    return path


@pytest.fixture(autouse=True)
def no_torchrun_env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)


def run_sample(checkpoint: Path, out: Path, *extra: str) -> dict:
    sample_main(["--checkpoint", str(checkpoint), "--npz", str(out), "--device", "cpu", *extra])
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def test_rank_slices_are_disjoint_and_cover_all():
    for world in (1, 2, 3, 4):
        covered = [i for r in range(world) for i in rank_slice(10, DistInfo(rank=r, world_size=world))]
        assert covered == list(range(10))


@pytest.mark.parametrize("kind", ["drifting", MODEL_KIND])
def test_npz_layout_and_batch_size_invariance(tmp_path, kind):
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", kind)
    nfe = ["--nfe", "2"] if kind == MODEL_KIND else []
    a = run_sample(checkpoint, tmp_path / "a.npz", "--n-samples", "13", "--batch-size", "13", *nfe)
    b = run_sample(checkpoint, tmp_path / "b.npz", "--n-samples", "13", "--batch-size", "4", *nfe)
    assert a["arr_0"].dtype == np.uint8 and a["arr_0"].shape == (13, 32, 32, 1)  # NHWC
    np.testing.assert_array_equal(a["arr_1"], np.arange(13) % 10)
    np.testing.assert_array_equal(a["arr_0"], b["arr_0"])  # per-sample seeds: batching does not matter
    assert len({a["arr_0"][i].tobytes() for i in range(13)}) == 13  # every sample has its own noise
    assert not list(tmp_path.glob("*.rank*.npz"))  # part files merged and removed
    rgb = run_sample(checkpoint, tmp_path / "c.npz", "--n-samples", "3", "--rgb", *nfe)
    assert rgb["arr_0"].shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(rgb["arr_0"][..., 0], a["arr_0"][:3, ..., 0])


def test_drifting_checkpoint_rejects_many_steps(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="nfe=4"):
        run_sample(checkpoint, tmp_path / "a.npz", "--n-samples", "2", "--nfe", "4")


@pytest.mark.slow
def test_two_gloo_ranks_write_the_same_file_as_one(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "model.safetensors")
    single = run_sample(checkpoint, tmp_path / "one.npz", "--n-samples", "11", "--batch-size", "3")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "image_gen.sample", "--checkpoint", str(checkpoint), "--npz", str(tmp_path / "two.npz")]
    command += ["--n-samples", "11", "--batch-size", "3", "--device", "cpu"]
    subprocess.run(command, env=env, check=True, timeout=300, capture_output=True)
    with np.load(tmp_path / "two.npz") as two:
        np.testing.assert_array_equal(two["arr_0"], single["arr_0"])
        np.testing.assert_array_equal(two["arr_1"], single["arr_1"])


def test_grid_of_a_flow_checkpoint_depends_on_nfe(tmp_path):
    from PIL import Image

    checkpoint = write_checkpoint(tmp_path / "model.safetensors", MODEL_KIND)
    grids = []
    for nfe in ("1", "3"):
        out = tmp_path / f"grid{nfe}.png"
        sample_main(
            [
                "--checkpoint",
                str(checkpoint),
                "--nfe",
                nfe,
                "--per-class",
                "1",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        grids.append(np.asarray(Image.open(out)))
    assert grids[0].shape == grids[1].shape and not np.array_equal(grids[0], grids[1])
