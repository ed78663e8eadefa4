"""mp4 video for LeRobot datasets, encoded and decoded with PyAV (its wheels carry their own FFmpeg).

Episodes of one camera are concatenated in one file: frame ``k`` of the file has presentation time
``k / fps`` exactly (time base 1/fps), so episode ``e`` starts at ``from_timestamp`` = its first frame's
index in the file / fps, as in the episodes table LeRobot writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# H.264 with full chroma (yuv444p): Push-T's 96x96 renders have one-pixel coloured edges that 4:2:0 chroma
# subsampling would smear. Every LeRobot decoder (PyAV, torchcodec) reads it. CRF 15 keeps the mean absolute
# pixel error near 1 of 255 (tests/data/test_lerobot.py states the tolerance).
CODEC = "libx264"
PIX_FMT = "yuv444p"
CRF = 15
GOP = 2  # a keyframe every 2 frames, as LeRobot encodes: random access decodes at most one extra frame


class VideoWriter:
    """Append uint8 [H, W, 3] frames to one mp4 at ``fps``; ``frames_written`` is the next frame's index."""

    def __init__(self, path: str | Path, fps: int, height: int, width: int):
        import av

        if height % 2 or width % 2:
            raise ValueError(f"{path}: frames are {height}x{width}; H.264 needs even sizes: crop or pad "
                             "the images by one pixel")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream(CODEC, rate=fps, options={"crf": str(CRF), "g": str(GOP)})
        self._stream.pix_fmt = PIX_FMT
        self._stream.height, self._stream.width = height, width
        self.frames_written = 0

    def write(self, frames: Iterable[np.ndarray]) -> None:
        import av

        for image in frames:  # [H, W, 3] uint8
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames_written
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        """Flush and close; a second call does nothing (abort() after a failed finish() closes again)."""
        if self._container is None:
            return
        self._container.mux(self._stream.encode())  # flush the encoder's delayed frames
        self._container.close()
        self._container = None


def decode_video(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of ``path``: (uint8 [F, H, W, 3], float64 [F] presentation times in seconds)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the dataset's episodes table points at it: copy the "
                                "whole dataset folder (videos/ included) or export it again")
    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * frame.time_base))
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode the video ({error}); the file is damaged: copy it again "
                         "or export the dataset again") from error
    if not frames:
        raise ValueError(f"{path} holds no video frame; copy it again or export the dataset again")
    order = np.argsort(times, kind="stable")
    return np.stack(frames)[order], np.asarray(times, dtype=np.float64)[order]


def video_info(fps: int, height: int, width: int) -> dict[str, Any]:
    """The ``info`` entry of a video feature in meta/info.json, as LeRobot writes it."""
    return {"video.height": height, "video.width": width, "video.codec": "h264", "video.pix_fmt": PIX_FMT,
            "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}
