"""Executor ``remote`` (a client of openpi's websocket protocol) and ``s2kit serve`` (the server).

``executor.py`` is the client executor, ``server.py`` the protocol codec and the server,
``cli.py`` the ``serve`` command, which it registers through ``s2kit_register_commands``.
"""
