"""Executors ``s2`` and ``baseline`` (See Less, Specify More) on the learning kit.

``configuration`` (the model config and its variants), ``modeling`` (the
network, `S2Policy`), ``executor`` (the thin executors); ``columns`` and
``overlay`` declare what S2 records in datasets and draws in videos.
"""
