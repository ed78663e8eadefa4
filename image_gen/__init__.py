"""One-step class-conditional image generation by feature-space drifting (Fashion-MNIST, pixel and latent).

models/ (dit.py generator, mae.py drift encoder, vae.py latent space, classifier.py evaluator), data.py,
queue.py, features.py, and the entry points train_mae, train, train_vae, train_evaluator, evaluate, sample.
"""
