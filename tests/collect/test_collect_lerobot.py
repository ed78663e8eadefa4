"""drifting-collect format=lerobot: the same demonstrations as the zarr collection, as a LeRobot folder."""

from __future__ import annotations

import numpy as np
import pytest

from drifting_policy.collect.cli import run_collect
from drifting_policy.data import ReplayBuffer
from drifting_policy.data.lerobot_format import read_lerobot

SETTINGS = {"task": "pusht", "episodes": 2, "seed": 3, "max_steps": 12, "keep_failed": True,
            "progress": False}


def test_format_lerobot_holds_the_zarr_collection(tmp_path):
    run_collect({**SETTINGS, "out": str(tmp_path / "pusht.zarr")})
    summary = run_collect({**SETTINGS, "format": "lerobot", "out": str(tmp_path / "pusht_lerobot")})
    assert summary.out == tmp_path / "pusht_lerobot" and summary.kept == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pusht.zarr", "pusht_lerobot"]  # no source left
    buffer = ReplayBuffer.open(tmp_path / "pusht.zarr")
    names = ["observation.state", "observation.environment_state", "observation.full_state", "action",
             "observation.image"]
    data = read_lerobot(tmp_path / "pusht_lerobot", names, progress=False)
    np.testing.assert_array_equal(data.episode_ends, buffer.episode_ends)
    np.testing.assert_array_equal(data.arrays["action"], buffer["action"][:])
    np.testing.assert_array_equal(data.arrays["observation.full_state"], buffer["state"][:])
    np.testing.assert_array_equal(data.arrays["observation.state"], buffer["state"][:, :2])
    np.testing.assert_array_equal(data.arrays["observation.environment_state"],
                                  buffer["keypoint"][:].reshape(-1, 18))
    assert np.abs(data.arrays["observation.image"].astype(int) - buffer["img"][:]).mean() < 3.0
    assert data.provenance["seed"] == 3 and data.provenance["n_seeds"] == 2


def test_format_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="format='parquet'; expected null, 'zarr' or 'lerobot'"):
        run_collect({**SETTINGS, "format": "parquet", "out": str(tmp_path / "x")})
    with pytest.raises(ValueError, match="format=lerobot writes a folder"):
        run_collect({**SETTINGS, "format": "lerobot", "out": str(tmp_path / "x.zarr")})
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken exists; pass overwrite=true"):
        run_collect({**SETTINGS, "format": "lerobot", "out": str(tmp_path / "taken")})


def test_failed_export_keeps_the_collected_store(tmp_path, monkeypatch):
    import drifting_policy.data.lerobot_export as lerobot_export

    def broken_export(source, out, **_):
        raise OSError(f"disk full while writing {out}")

    monkeypatch.setattr(lerobot_export, "export", broken_export)
    with pytest.raises(OSError, match="disk full"):
        run_collect({**SETTINGS, "format": "lerobot", "out": str(tmp_path / "ds")})
    source = tmp_path / "ds.source.zarr"
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]  # kept for a second export
    assert ReplayBuffer.open(source).n_episodes == 2
