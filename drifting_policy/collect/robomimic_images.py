"""Camera observations for a robomimic hdf5 file, rendered by replaying each demo's stored MuJoCo states.

    python -m drifting_policy.collect.robomimic_images data/robomimic/lift_scripted.hdf5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from drifting_policy.data.robomimic_hdf5 import IMAGE_COMPRESSION, read_env_args, validate_file


def render_images(path: str | Path, image_size: int = 84, progress: bool = True) -> int:
    """Add ``obs``/``next_obs`` camera images to every demo by replaying its ``states``; returns demos done.

    The final ``next_obs`` comes from stepping the last action from the last state (replay is exact).
    """
    from tqdm import tqdm

    from envs.robomimic.env import CAMERAS, RobomimicEnv, config_from_env_args

    with h5py.File(path, "r+") as file:
        names = validate_file(file, path)
        config = config_from_env_args(read_env_args(file, path), obs_type="image")
        config.image_size = image_size
        env = RobomimicEnv(config, terminate_on_success=False)
        for name in tqdm(names, desc="render images", disable=not progress):
            demo = file["data"][name]
            images = _render_demo(env, demo)
            for key in CAMERAS:
                for prefix, frames in (("obs", images[key][:-1]), ("next_obs", images[key][1:])):
                    if key in demo[prefix]:
                        del demo[prefix][key]
                    demo[prefix].create_dataset(key, data=frames, **IMAGE_COMPRESSION)
        env.close()
    return len(names)


def _render_demo(env, demo: h5py.Group) -> dict[str, np.ndarray]:
    """{camera key: uint8 [T + 1, H, W, 3]}: one frame per stored state plus the final one."""
    from envs.robomimic.env import CAMERAS

    states, actions = demo["states"][:], demo["actions"][:]
    frames: dict[str, list[np.ndarray]] = {}
    model_file = str(demo.attrs["model_file"])
    for t, state in enumerate(states):
        obs, _ = env.reset(options={"reset_to_state": state, "model_file": model_file if t == 0 else None})
        for key in CAMERAS:
            frames.setdefault(key, []).append(obs[key])
    env.reset(options={"reset_to_state": states[-1]})
    obs = env.step(actions[-1])[0]  # the state after the last action is not stored; replay is exact
    for key in CAMERAS:
        frames[key].append(obs[key])
    return {key: np.stack(value) for key, value in frames.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="robomimic hdf5 file")
    parser.add_argument("--image-size", type=int, default=84)
    args = parser.parse_args(argv)
    with h5py.File(args.path, "r") as file:
        names = validate_file(file, args.path)
        print(
            f"{args.path}: {len(names)} demos, {int(file['data'].attrs.get('total', 0))} samples, "
            f"obs keys {sorted(file['data'][names[0]]['obs'])}"
        )
    print(f"rendered images for {render_images(args.path, args.image_size)} demos")


if __name__ == "__main__":
    main()
