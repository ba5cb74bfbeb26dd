"""The sans-I/O sync engine: live project state, rebase of remote changes, debounced flushes.

Nothing in this package performs I/O, reads a clock or imports asyncio: inputs are method calls on
`syncd.core.engine.SyncEngine` (each time-dependent one takes ``now``), outputs are the effects that
`SyncEngine.take_effects` returns. `tests/core/test_purity.py` enforces this.

Modules, one idea each:

- ``ids``: identifier types. ``values``: JSON values and rows. ``schema``: the synced tables.
- ``model``: the inputs (mutations, remote changes, loads, write results).
- ``journal``: the durable journal entry and its JSON codec.
- ``batch``: the write batch sent to the database, and its apply rule.
- ``effects``: the outputs.
- ``edits``: the pending writes to one row, and how they coalesce.
- ``reconcile``: which remote rows are echoes or stale, and visible differences.
- ``validate``: checks of an editor's mutation against the live view.
- ``history``, ``dedupe``, ``debounce``, ``backoff``: small helpers with one job each.
- ``document``: the state of one open project. ``engine``: the single entry point.
"""
