"""Historical data: the simulator, the history file format, replay publish.

- :mod:`replay.simulator` — ``simulate(SimulationConfig) -> DataFrame`` (labelled, seeded);
- :mod:`replay.history` — the Parquet format, ``write_history`` / ``read_history``, and the
  record helpers (``iter_transactions``, ``label_records``);
- :mod:`replay.publish` — ``publish_history`` into topic ``transactions``.
"""
