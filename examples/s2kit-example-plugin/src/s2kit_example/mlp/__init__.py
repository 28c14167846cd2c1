"""Executor ``colour-mlp``: a small learned executor on s2kit's learning kit.

The folder holds what is this model's own: ``configuration.py`` (what can be
set), ``modeling.py`` (the network and its loss) and a thin ``executor.py``
naming the policy. Training (``s2kit train --executor colour-mlp``),
checkpoints, evaluation, ONNX export and serving come from s2kit unchanged.
"""
