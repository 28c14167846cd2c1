"""What composes components for the command line: collect, relabel, evaluate, episode videos.

Each workflow builds runtimes from pipelines and the registry; core never imports it.
"""
