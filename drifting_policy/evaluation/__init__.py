"""Evaluation: the closed-loop runner and `drifting-eval`, `-bench`, `-modes`, `-demo`."""
