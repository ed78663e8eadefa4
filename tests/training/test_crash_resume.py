"""drifting-train killed for real (SIGKILL) at chosen and random points, then resumed: the finished run is
bit-identical to one that was never interrupted (weights, EMA, optimiser, RNG and metric rows)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
from training_fakes import train_overrides, write_tiny_pusht_store

from drifting_policy.common.faults import FAILPOINT_ENV
from drifting_policy.training.checkpoint import load_checkpoint

TIME_KEYS = ("train/steps_per_s", "train/minutes", "train/wall_minutes")  # wall-clock: differ by nature
SIGKILL_STATUS = -signal.SIGKILL


def command(store, run_dir) -> list[str]:
    overrides = [*train_overrides(store, run_dir, "drifting"), "train.max_steps=12",
                 "train.checkpoint_every=2", "train.val_every=3",
                 "train.eval_at_end=false", "train.save_every=null"]
    return [sys.executable, "-m", "drifting_policy.training.train", *overrides]


def start(store, run_dir, failpoint: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.Popen(command(store, run_dir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def rows(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_tiny_pusht_store(tmp_path_factory.mktemp("data") / "tiny.zarr")


def test_killed_runs_resume_bit_identically(store, tmp_path):
    reference = tmp_path / "reference"
    done = start(store, reference)
    assert done.wait(timeout=120) == 0, done.stderr.read()

    crashed = tmp_path / "crashed"
    # 1. killed inside the 3rd checkpoint write: the new file is complete but not yet renamed into place
    killed = start(store, crashed, "checkpoint_write:3")
    assert killed.wait(timeout=120) == SIGKILL_STATUS, killed.stderr.read()
    assert list((crashed / "checkpoints").glob(".*.tmp")), "the kill should leave the unrenamed file"
    assert load_checkpoint(crashed / "checkpoints" / "latest").train_state["step"] == 4  # the old one, whole
    # 2. killed halfway through appending a metrics row
    killed = start(store, crashed, "metrics_append:3")
    assert killed.wait(timeout=120) == SIGKILL_STATUS, killed.stderr.read()
    last_line = (crashed / "metrics.jsonl").read_text().splitlines()[-1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(last_line)  # torn on disk
    # 3. killed from outside at a random moment once it trains again
    killed = start(store, crashed)
    before = len((crashed / "metrics.jsonl").read_text().splitlines())
    deadline = time.monotonic() + 60
    while len((crashed / "metrics.jsonl").read_text().splitlines()) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(0).uniform(0.0, 0.2))
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    # 4. resumed to the end
    finished = start(store, crashed)
    assert finished.wait(timeout=120) == 0, finished.stderr.read()

    expected = load_file(str(reference / "checkpoints" / "latest.safetensors"))
    got = load_file(str(crashed / "checkpoints" / "latest.safetensors"))
    assert sorted(got) == sorted(expected)
    different = [name for name in expected if not expected[name].equal(got[name])]
    assert not different, f"tensors differ after the crashes: {different[:5]}"
    assert rows(crashed) == rows(reference)
    assert not list((crashed / "checkpoints").glob(".*.tmp"))
