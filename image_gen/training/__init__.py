"""The one image training loop (trainer), its shared config (config), its resume files (state) and the hydra
plumbing of the training entry points (hydra_config); objectives plug in from image_gen.objectives."""
