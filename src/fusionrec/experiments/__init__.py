"""Experiments: train / evaluate / grid-search orchestration above the models and the evaluator.

This is where stages are wired for the CLI, the demo and (later) Ray; it holds no algorithm.
"""
