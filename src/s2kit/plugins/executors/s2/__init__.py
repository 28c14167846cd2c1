"""Executor ``s2`` (See Less, Specify More): configuration, network and, to come, training.

Work in progress for issue 4: the network and its variants are here and
tested; training on datasets, checkpoints and the executor plugin are not
yet, so nothing registers this package as a plugin.
"""
