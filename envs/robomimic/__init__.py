"""robomimic tasks (Lift, PickPlaceCan, NutAssemblySquare, ToolHang) over robosuite 1.5: env, scripted
experts, hdf5 files.

Importing this package registers ``envs/RobomimicLift-v0``, ``envs/RobomimicCan-v0``,
``envs/RobomimicSquare-v0`` and ``envs/RobomimicToolHang-v0``
(``gymnasium.make("envs/RobomimicCan-v0", obs_type="image")``); robosuite is imported only when an env is
built. Episodes are truncated inside the env at the task horizon.
"""

import gymnasium

ENV_IDS = {
    "lift": "envs/RobomimicLift-v0",
    "can": "envs/RobomimicCan-v0",
    "square": "envs/RobomimicSquare-v0",
    "tool_hang": "envs/RobomimicToolHang-v0",
}

for _task, _env_id in ENV_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(id=_env_id, entry_point="envs.robomimic.env:RobomimicEnv", kwargs={"task": _task})
