"""FSDP2 option for the L-size models: one step under 2 gloo ranks equals DDP's (CPU correctness check)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from image_gen.distributed import DistInfo, wrap_fsdp

WORKER = Path(__file__).with_name("fsdp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def test_single_process_is_identity_and_bad_unit_is_named():
    model = nn.Sequential(nn.Linear(2, 2))
    assert wrap_fsdp(model, DistInfo()) is model
    with pytest.raises(ValueError, match="no .blocks"):
        wrap_fsdp(model, DistInfo(rank=0, world_size=2))


@pytest.mark.slow
def test_fsdp_step_equals_ddp_step_on_two_gloo_ranks():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{WORKER.parent}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        command + [str(WORKER)], env=env, check=True, timeout=300, capture_output=True, text=True
    )
    results = [
        json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines() if line.startswith("{")
    ]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for r in results:  # the full (gathered) parameters after one AdamW step, both ranks
        assert r["fsdp"] == pytest.approx(r["ddp"], rel=1e-6)
    assert results[0]["fsdp"] == pytest.approx(results[1]["fsdp"], rel=1e-9)
