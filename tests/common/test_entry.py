"""Entry-point plumbing: user errors are one line on stderr with exit status 2, key=value settings."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from drifting_policy.common.entry import TRACEBACK_ENV, USER_ERROR_EXIT, parse_key_values, report_user_errors


@dataclasses.dataclass
class Settings:
    steps: int = 3
    names: tuple[str, ...] = ("a",)


def test_key_values_override_defaults_with_types_checked():
    parsed = parse_key_values(Settings, ["steps=5", "names=[x,y]"])
    assert (parsed.steps, tuple(parsed.names)) == (5, ("x", "y"))
    assert parse_key_values(Settings, []) == Settings()
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['step'\]; known keys"):
        parse_key_values(Settings, ["step=5"])
    with pytest.raises(ValueError, match="setting steps="):
        parse_key_values(Settings, ["steps=many"])
    with pytest.raises(ValueError, match="expected key=value"):
        parse_key_values(Settings, ["--steps", "5"])


def test_user_error_exits_2_with_one_line_and_bugs_keep_their_traceback(capsys, monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)

    @report_user_errors
    def bad_input():
        raise FileNotFoundError("data/x.zarr does not exist;\n collect it first")

    with pytest.raises(SystemExit) as stop:
        bad_input()
    assert stop.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err == "error: data/x.zarr does not exist; collect it first\n"

    @report_user_errors
    def bug():
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        bug()
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(FileNotFoundError):
        bad_input()


def run_console(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != TRACEBACK_ENV}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120)


def test_eval_without_checkpoint_is_refused_even_where_a_glob_would_match(tmp_path):
    """`checkpoint` defaults to hydra's '???', which once matched `abc/checkpoints/latest.safetensors` as a
    glob and evaluated it: a real process in such a folder must stop with one line and status 2."""
    (tmp_path / "abc" / "checkpoints").mkdir(parents=True)
    (tmp_path / "abc" / "checkpoints" / "latest.safetensors").write_bytes(b"not a checkpoint")
    result = run_console(["drifting_policy.evaluation.eval"], tmp_path)
    assert result.returncode == USER_ERROR_EXIT, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: checkpoint= is required") and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_config_typo_is_one_line_before_hydra_runs(tmp_path):
    result = run_console(["drifting_policy.training.train", "train.lrr=1"], tmp_path)
    assert result.returncode == USER_ERROR_EXIT, result.stderr
    assert result.stderr.startswith("error: Could not override 'train.lrr'")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # hydra wrote nothing (no outputs/, no run folder)
