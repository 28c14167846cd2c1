"""Executor ``cr``: Continuous Reasoning for VLA on the learning kit.

``modeling`` (the network, `CrPolicy`, and its config `CrConfig`) and
``executor`` (the thin executor, `CrExecutor`).
"""
