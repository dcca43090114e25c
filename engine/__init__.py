"""The polyrec engine: hooks, plugin manager, registry, config, the data flow, CLI and server.

Import submodules directly; nothing heavy happens at import time. The modules in the order
the data flows (:mod:`.engine` is the facade every write goes through):

- items: :mod:`.readers` (files, frames, iterables -> chunks of items and events) ->
  :mod:`.encoding` (one encoder slot: content hashes, cache, per-item isolation) ->
  :mod:`.fusing` (field vectors -> one item vector, re-fusing) -> :mod:`.layout` (the
  store's collections and event log, every write versioned), run by :mod:`.ingest`, which
  first checks the config against the items (:mod:`.data_check`);
- users: :mod:`.users` (attributes in the store) -> :mod:`.user_features` (attributes ->
  features) -> :mod:`.user_prior` (features -> item scores, learnt at fit), held by
  :mod:`.cold_start`;
- events -> :mod:`.training` (fit the trainable components, re-encode, re-fuse);
- queries: :mod:`.retrieval` (a user's history -> the scorer's query -> candidates -> the
  scorer's ranking, explained; the attribute prior for users with little history);
- a first config from the data: :mod:`.config_init` (``polyrec init``);
- beside them: :mod:`.assembly` (components from the config), :mod:`.manifest` (what was
  fitted, collection dims), :mod:`.describe` (what the store holds of an item),
  :mod:`.config`, :mod:`.registry`, :mod:`.plugins`, :mod:`.hookspecs`.
"""

__all__: list[str] = []
