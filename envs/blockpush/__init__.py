"""Multimodal block pushing (IBC / Diffusion Policy) on MuJoCo, and a scripted expert.

Importing this package registers the gymnasium id ``envs/BlockPush-v0`` (``gymnasium.make(
"envs/BlockPush-v0")``); mujoco is imported only when an env is built. Episodes are truncated inside the env
at its ``max_episode_steps`` constructor argument (350, Diffusion Policy's runner).
"""

import gymnasium

ENV_ID = "envs/BlockPush-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="envs.blockpush.env:BlockPushEnv")
