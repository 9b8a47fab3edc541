"""The experiment layer: sweeps of runs on Ray (`hapo-sweep`), statistics and pictures across
seeds (`hapo-plot`), and evaluation and video of a trained team (`hapo-eval`)."""
