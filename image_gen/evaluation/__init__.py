"""Scoring generators: sample-quality metrics on feature vectors (metrics), samples of a checkpoint scored
with the evaluation network (scoring), and ADM-layout ``.npz`` sample files written across ranks (npz)."""
