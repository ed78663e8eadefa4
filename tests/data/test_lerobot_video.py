"""mp4 encode/decode with PyAV: frame k at k / fps exactly, small codec loss, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from lerobot_fakes import frames

from drifting_policy.data.lerobot_video import VideoWriter, decode_video


def test_frames_at_multiples_of_one_over_fps(tmp_path):
    images = np.concatenate([frames(7, 0), frames(5, 1)])
    writer = VideoWriter(tmp_path / "v.mp4", 15, 16, 16)
    writer.write(images[:7])
    assert writer.frames_written == 7
    writer.write(images[7:])
    writer.close()
    decoded, times = decode_video(tmp_path / "v.mp4")
    assert decoded.shape == images.shape and decoded.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(12) / 15, atol=1e-9)
    assert np.abs(decoded.astype(int) - images).mean() < 3.0  # tests/data/test_lerobot.py: the tolerance


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4 is missing"):
        decode_video(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4: cannot decode"):
        decode_video(tmp_path / "bad.mp4")
    with pytest.raises(ValueError, match="needs even sizes"):
        VideoWriter(tmp_path / "odd.mp4", 10, 15, 16)
