"""The stages of a run, as plain functions on a run directory: train, export, simulate, count and estimate
energy, report, and ``train_and_convert`` chaining them. This is the only layer that sees all three packages
(``iemf_neuro`` -> ``converters`` -> ``hardware_targets``); the ``iemf-neuro`` command (``pipeline.cli``) only
parses arguments and calls it. Every stage reads the run's own config, so the dataset a run was trained on
is the dataset every later stage uses.
"""
