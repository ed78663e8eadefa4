"""Franka Kitchen (Relay Policy Learning / D4RL, as Diffusion Policy evaluates it) with state observations,
and a scripted expert.

Importing this package registers the gymnasium id ``envs/Kitchen-v0`` (``gymnasium.make("envs/Kitchen-v0")``);
gymnasium-robotics and mujoco are imported only when an env is built. Episodes are truncated inside the env at
its ``max_episode_steps`` constructor argument (360: the scripted expert needs up to ~290 steps; Diffusion
Policy's kitchen runner stops at 280).
"""

import gymnasium

ENV_ID = "envs/Kitchen-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="envs.kitchen.env:FrankaKitchenEnv")
