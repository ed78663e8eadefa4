"""ReplayBuffer: round trip, validation errors (each naming key and episode), zarr-v2 stores."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
import zarr

from drifting_policy.data.replay_buffer import ReplayBuffer, time_chunks

LENGTHS = (3, 5, 4)


def _episode(length: int, offset: float) -> dict[str, np.ndarray]:
    steps = np.arange(length, dtype=np.float32)[:, None] + offset
    return {
        "state": np.repeat(steps, 5, axis=1),  # [T, 5]
        "action": np.repeat(steps, 2, axis=1) * 10,  # [T, 2]
        "img": np.full((length, 8, 8, 3), int(offset), dtype=np.uint8),  # [T, 8, 8, 3]
    }


def _write_store(path, lengths=LENGTHS) -> ReplayBuffer:
    buffer = ReplayBuffer.create(path, attrs={"note": "test"})
    for i, length in enumerate(lengths):
        buffer.add_episode(_episode(length, 100 * i), meta={"seed": i})
    return buffer


def test_round_trip(tmp_path):
    path = tmp_path / "buf.zarr"
    _write_store(path)
    buffer = ReplayBuffer.open(path, keys=("state", "action"))
    assert buffer.n_episodes == 3 and buffer.n_steps == 12
    np.testing.assert_array_equal(buffer.episode_ends, [3, 8, 12])
    assert buffer.episode_ends.dtype == np.int64
    assert buffer.keys() == ["action", "img", "state"]
    assert buffer["img"].dtype == np.uint8 and buffer["img"].shape == (12, 8, 8, 3)
    episode = buffer.get_episode(1)
    np.testing.assert_array_equal(episode["action"], _episode(5, 100)["action"])
    np.testing.assert_array_equal(episode["img"], _episode(5, 100)["img"])
    np.testing.assert_array_equal(buffer.episode_meta("seed"), [0, 1, 2])
    assert buffer.attrs["note"] == "test"
    assert buffer.episode_slice(-1) == slice(8, 12)
    appendable = ReplayBuffer.open(path, mode="r+")
    appendable.add_episode(_episode(2, 300), meta={"seed": 3})
    np.testing.assert_array_equal(ReplayBuffer.open(path).episode_ends, [3, 8, 12, 14])


def test_memory_store_and_append_checks():
    buffer = ReplayBuffer.create()
    buffer.add_episode(_episode(2, 0))
    with pytest.raises(ValueError, match="same positive length"):
        buffer.add_episode({**_episode(2, 0), "action": np.zeros((3, 2), np.float32)})
    with pytest.raises(ValueError, match=r"data/state expects steps of shape \(5,\)"):
        buffer.add_episode({**_episode(2, 0), "state": np.zeros((2, 4), np.float32)})
    with pytest.raises(ValueError, match="keys"):
        buffer.add_episode({"state": np.zeros((2, 5), np.float32)})
    assert buffer.n_episodes == 1  # rejected episodes leave no trace


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "buf.zarr"
    _write_store(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ReplayBuffer.create(path)
    assert ReplayBuffer.create(path, overwrite=True).n_episodes == 0


def test_image_chunks_hold_whole_frames():
    chunks = time_chunks((96, 96, 3), np.dtype(np.uint8))
    assert chunks[1:] == (96, 96, 3) and 16 <= chunks[0] <= 1024
    assert time_chunks((2,), np.dtype(np.float32))[0] == 8192


def _corrupt(path, fn) -> None:
    root = zarr.open_group(str(path), mode="r+")
    fn(root)


@pytest.mark.parametrize(
    ("corruption", "pattern"),
    [
        (lambda r: r["meta"].__delitem__("episode_ends"), r"missing meta/episode_ends"),
        (lambda r: r["data"]["state"].resize((10, 5)),
         r"ragged.*data/state ends at row 10, inside episode 2"),
        (lambda r: r["meta"]["episode_ends"].__setitem__(slice(None), [3, 2, 12]),
         r"episode 1 ends at 2 after 3 \(length -1\)"),
        (lambda r: r["meta"]["episode_ends"].__setitem__(slice(None), [0, 8, 12]),
         r"episode 0 ends at 0 after 0 \(length 0\)"),
        (lambda r: r["meta"]["episode_ends"].__setitem__(slice(None), [3, 8, 11]),
         r"data/\w+ has 12 rows but the last episode end is 11 \(mismatch at episode 3\)"),
        (lambda r: r["data"]["action"].__setitem__((9, 1), np.nan),
         r"data/action has NaN/inf at row 9 \(episode 2, step 1\)"),
    ],
    ids=["missing_ends", "ragged", "non_monotonic", "zero_length", "last_end", "nan_action"],
)
def test_validation_errors(tmp_path, corruption, pattern):
    path = tmp_path / "buf.zarr"
    _write_store(path)
    _corrupt(path, corruption)
    with pytest.raises(ValueError, match=pattern):
        ReplayBuffer.open(path)


def test_missing_required_key_and_incomplete(tmp_path):
    path = tmp_path / "buf.zarr"
    _write_store(path)
    with pytest.raises(ValueError, match=r"missing required key data/keypoint"):
        ReplayBuffer.open(path, keys=("keypoint",))
    _corrupt(path, lambda r: r.attrs.update({"complete": False}))
    with pytest.raises(ValueError, match="interrupted"):
        ReplayBuffer.open(path)
    assert ReplayBuffer.open(path, allow_incomplete=True).n_episodes == 3
    with pytest.raises(FileNotFoundError):
        ReplayBuffer.open(tmp_path / "nothing.zarr")


def test_reads_zarr_v2_blosc_store(tmp_path):
    """The layout of DP's pusht_cchi_v7_replay.zarr: format 2, blosc, float32 images in [0, 255]."""
    path = tmp_path / "dp_v2.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    blosc = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    rng = np.random.default_rng(0)
    arrays = {"action": rng.uniform(0, 512, (7, 2)).astype(np.float32),
              "state": rng.uniform(0, 512, (7, 5)).astype(np.float32),
              "img": rng.integers(0, 256, (7, 96, 96, 3)).astype(np.float32)}
    for key, value in arrays.items():
        root.require_group("data").create_array(key, data=value, chunks=(4, *value.shape[1:]),
                                                compressors=blosc)
    root.require_group("meta").create_array("episode_ends", data=np.array([3, 7], dtype=np.int64))
    assert (path / "data" / "action" / ".zarray").exists()  # really format 2

    buffer = ReplayBuffer.open(path, keys=("action", "state", "img"))
    assert buffer.root.metadata.zarr_format == 2
    np.testing.assert_array_equal(buffer.episode_ends, [3, 7])
    for key, value in arrays.items():
        np.testing.assert_array_equal(buffer[key][:], value)
    np.testing.assert_array_equal(buffer.get_episode(1)["action"], arrays["action"][3:])


def test_add_episodes_batch_equals_one_by_one():
    one_by_one, batched = ReplayBuffer.create(), ReplayBuffer.create()
    episodes = [_episode(length, 100 * i) for i, length in enumerate(LENGTHS)]
    for i, episode in enumerate(episodes):
        one_by_one.add_episode(episode, meta={"seed": i})
    batched.add_episodes(episodes[:1], [{"seed": 0}])
    batched.add_episodes(episodes[1:], [{"seed": 1}, {"seed": 2}])
    np.testing.assert_array_equal(batched.episode_ends, one_by_one.episode_ends)
    for key in one_by_one.keys():
        np.testing.assert_array_equal(batched[key][:], one_by_one[key][:])
    np.testing.assert_array_equal(batched.episode_meta("seed"), [0, 1, 2])
    bad = {**_episode(2, 0), "img": np.zeros((2, 8, 8, 1), np.uint8)}
    with pytest.raises(ValueError, match=r"episode 4\): data/img expects steps"):
        batched.add_episodes([_episode(2, 0), bad], [{"seed": 3}, {"seed": 4}])
    assert batched.n_steps == 12 and batched["state"].shape[0] == 12  # nothing of the batch written
