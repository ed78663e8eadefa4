"""Square (NutAssemblySquare) through the robomimic collector, the CLI dispatch and the square_state task."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("robosuite")

from training_fakes import compose_config  # noqa: E402

from drifting_policy.collect import cli  # noqa: E402
from drifting_policy.collect.robomimic import RobomimicCollectConfig  # noqa: E402
from drifting_policy.evaluation.runner import RunnerConfig  # noqa: E402
from envs.robomimic import ENV_IDS  # noqa: E402
from envs.robomimic.env import TASKS  # noqa: E402


def test_collect_config_accepts_square_with_its_defaults():
    config = RobomimicCollectConfig(task="square")
    assert config.out == "data/robomimic/square_scripted.hdf5"
    assert config.horizon == 400 == TASKS["square"].horizon
    assert TASKS["square"].env_name == "NutAssemblySquare"
    assert config.noise_std == 0.1
    assert cli.COLLECTORS["square"] == "drifting_policy.collect.robomimic"
    assert cli.NATIVE_FORMATS["square"] == "hdf5"


def test_unknown_task_is_still_refused_naming_square():
    with pytest.raises(ValueError, match=r"task='transport'; expected one of .*'square'"):
        RobomimicCollectConfig(task="transport")


def test_cli_refuses_an_unknown_task_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTING_TRACEBACK", raising=False)
    monkeypatch.setattr(sys, "argv", ["drifting-collect", "task=transport", "episodes=1", "progress=false"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: task='transport'") and "'square'" in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_square_state_config_matches_the_env():
    task = compose_config("train", ["task=square_state"])["task"]
    runner = RunnerConfig(**task["runner"])
    assert runner.env_id == ENV_IDS["square"] and runner.env_kwargs == {"obs_type": "low_dim"}
    assert runner.max_steps == TASKS["square"].horizon and runner.seeds == list(range(100000, 100050))
    dataset, meta = task["dataset"], task["shape_meta"]
    assert dataset["hdf5_path"] == RobomimicCollectConfig(task="square").out
    assert dataset["abs_action"] is False
    assert dataset["obs_keys"] == ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert meta["obs"]["object"]["shape"] == [TASKS["square"].object_dim] and meta["action"]["shape"] == [7]
    assert "drifting-collect task=square" in dataset["collect_hint"]
