"""The paper's 2-D experiments (`drifting-toy`): targets, experiments and plots."""
