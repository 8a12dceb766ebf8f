"""Drift detection: PSI and KS per feature and on the score, per window, against the
reference profile stored with the model version.

Pure core: :mod:`drift.stats` (PSI, KS, corrections), :mod:`drift.reference` (bins and
sample from ``reference_profile.json``), :mod:`drift.windows` (count / event-time tumbling
windows), :mod:`drift.detect` (thresholds and verdicts), :mod:`drift.sustained` (n of m
windows), :mod:`drift.batch` (a whole recorded stream). Adapters: :mod:`drift.monitor`
(Kafka worker), :mod:`drift.metrics` (Prometheus), :mod:`drift.report` (Markdown + SVG).
See ``docs/drift.md``.
"""
