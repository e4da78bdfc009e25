"""Persistence: the append-only log per shard, RDB snapshots, and loading them at start-up.

- :mod:`.crc64`: Redis's CRC-64 (Jones) and how to combine checksums of pieces.
- :mod:`.rdb`: the RDB format (version 10, strings with deadlines), written and read.
- :mod:`.aof`: each shard's append-only log: records, files, fsync policy, rewrite, replay.
- :mod:`.journal`: the shard's tracked execution path (used only while persistence is on).
- :mod:`.loader`: what a shard loads when it starts, re-routed by slot.
- :mod:`.snapshots`: the acceptor's side: SAVE/BGSAVE as a consistent cut, save rules.
"""
