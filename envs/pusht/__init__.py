"""Push-T: Diffusion Policy's pymunk environment and a scripted expert.

Importing this package registers the gymnasium id ``envs/PushT-v0``
(``gymnasium.make("envs/PushT-v0", obs_type="image")``). Episodes are truncated inside the env at its
``max_episode_steps`` constructor argument (300): gymnasium.make's own ``max_episode_steps`` argument
only adds an outer TimeLimit and cannot lengthen episodes.
"""

import gymnasium

ENV_ID = "envs/PushT-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="envs.pusht.env:PushTEnv")
