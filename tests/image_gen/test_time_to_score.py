"""Time-to-score curves: each evaluation is paired with its own run's CPU time at its own step."""

import json

import pytest

from image_gen.time_to_score import load_points, main, mean_curve


def fake_run(root, name, cpu_by_step, kind="drifting", nfe=1, fd_by_step=None):
    """A run folder with metrics rows (a plain row without CPU time between) and one eval JSON per step."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    rows = [{"step": 1, "train/loss": 1.0}]
    rows += [{"step": step, "train/cpu_minutes": cpu} for step, cpu in cpu_by_step.items()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    paths = []
    for step in cpu_by_step:
        checkpoint = run / "checkpoints" / f"step_{step:06d}" / "model.safetensors"
        result = {"checkpoint": str(checkpoint), "model_kind": kind, "nfe": nfe, "cfg_alpha": 1.5,
                  "step": step, "fd": (fd_by_step or {}).get(step, 100.0 / step),
                  "class_accuracy": step / 1e4}
        path = root / f"{name}_{step}.json"
        path.write_text(json.dumps(result))
        paths.append(path)
    return paths


def test_points_take_their_own_runs_cpu_and_seeds_are_averaged(tmp_path, capsys):
    paths = fake_run(tmp_path, "drift_s0", {400: 1.0, 800: 2.0}, fd_by_step={400: 30.0, 800: 10.0})
    paths += fake_run(tmp_path, "drift_s1", {400: 3.0, 800: 4.0}, fd_by_step={400: 50.0, 800: 20.0})
    paths += fake_run(tmp_path, "flow_s0", {500: 0.5}, kind="flow", nfe=50)
    groups = load_points(paths)
    drifting = groups[("drifting", 1, 1.5)]
    assert drifting[str(tmp_path / "drift_s1")][400]["cpu_minutes"] == 3.0
    assert mean_curve(drifting) == {400: {"cpu_minutes": 2.0, "fd": 40.0, "class_accuracy": 0.04},
                                    800: {"cpu_minutes": 3.0, "fd": 15.0, "class_accuracy": 0.08}}
    assert list(groups[("flow", 50, 1.5)][str(tmp_path / "flow_s0")]) == [500]
    main([str(p) for p in paths] + ["--out", str(tmp_path / "curve.png")])
    out = capsys.readouterr().out
    assert "| drifting 1-NFE (alpha 1.5) | 800 | 3.00 | 15.0 | 0.080 | 10.0 / 20.0 |" in out
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_a_step_without_cpu_time_says_how_to_record_it(tmp_path):
    paths = fake_run(tmp_path, "run", {400: 1.0})
    result = json.loads(paths[0].read_text())
    paths[0].write_text(json.dumps({**result, "step": 1}))  # step 1's row has no train/cpu_minutes
    with pytest.raises(ValueError, match="no train/cpu_minutes at step 1; train with keep_every"):
        load_points(paths)
