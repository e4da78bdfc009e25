"""Command handlers, one module per family, and the table that binds names to them.

Shard handlers (``strings``, ``keys``) take ``(shard, db, argv, enc)`` and return the encoded
reply. Acceptor handlers (``connection``, ``server``) take ``(session, argv)``. The table in
:mod:`shardserver.commands.table` says which is which.
"""
