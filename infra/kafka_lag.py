"""Consumer lag per group and partition, read from the brokers at scrape time.

Lag is measured from outside the workers (what Burrow or kafka-lag-exporter do): committed
offsets of each group against the partitions' end offsets. It is right whatever the worker
is (confluent-kafka, transactional or not) and it keeps reporting when a worker is
stuck or dead, which is exactly when it matters. Every Kafka call is bounded by
``timeout_s``; a failed read shows as ``fraudstream_consumer_lag_up{group} 0`` and an error
count, never as a hung scrape.

Metrics (labels bounded by the topics' partition counts):

- ``fraudstream_consumer_lag_messages{group,topic,partition}``: end offset - committed
  offset (a partition the group never committed counts from its low watermark);
- ``fraudstream_consumer_committed_offset{group,topic,partition}``;
- ``fraudstream_kafka_topic_end_offset{topic,partition}``: its ``deriv`` is the input rate;
- ``fraudstream_consumer_lag_up{group}``: 1 when the last read succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("fraudstream.infra.kafka_lag")

Offsets = dict[tuple[str, int], int]


def lag(committed: Offsets, low: Offsets, high: Offsets) -> Offsets:
    """Messages behind per partition; never negative.

    >>> lag({("t", 0): 5, ("t", 1): -1001}, {("t", 0): 0, ("t", 1): 2}, {("t", 0): 9, ("t", 1): 4})
    {('t', 0): 4, ('t', 1): 2}
    """
    out = {}
    for key, end in high.items():
        start = committed.get(key, -1)
        if start < 0:  # no commit yet: everything still retained is behind
            start = low.get(key, 0)
        out[key] = max(0, end - start)
    return out


class ConsumerLagCollector(Collector):
    """A custom collector: each scrape lists the groups' offsets and the topics' ends."""

    def __init__(self, admin: AdminClient, groups: Iterable[str], timeout_s: float) -> None:
        self.admin = admin
        self.groups = tuple(groups)
        self.timeout_s = timeout_s
        self.errors = 0

    def _committed(self, group: str) -> Offsets:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self.admin.list_consumer_group_offsets(
            request, request_timeout=self.timeout_s)
        result = futures[group].result(timeout=self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}

    def _watermarks(self, keys: Iterable[tuple[str, int]]) -> tuple[Offsets, Offsets]:
        keys = list(keys)
        if not keys:
            return {}, {}
        ends: list[Offsets] = []
        for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
            wanted = {TopicPartition(t, p): spec for t, p in keys}
            futures = self.admin.list_offsets(
                wanted, isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=self.timeout_s)
            ends.append({(tp.topic, tp.partition): f.result(timeout=self.timeout_s).offset
                         for tp, f in futures.items()})
        return ends[0], ends[1]

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lag_m = GaugeMetricFamily("fraudstream_consumer_lag_messages", "Messages a consumer "
                                  "group is behind, per partition.",
                                  labels=["group", "topic", "partition"])
        committed_m = GaugeMetricFamily("fraudstream_consumer_committed_offset",
                                        "Committed offset per group and partition.",
                                        labels=["group", "topic", "partition"])
        end_m = GaugeMetricFamily("fraudstream_kafka_topic_end_offset", "End (high "
                                  "watermark) offset per partition.",
                                  labels=["topic", "partition"])
        up_m = GaugeMetricFamily("fraudstream_consumer_lag_up", "1 if the group's offsets "
                                 "were read at the last scrape.", labels=["group"])
        seen_ends: set[tuple[str, int]] = set()
        for group in self.groups:
            try:
                committed = self._committed(group)
                low, high = self._watermarks(committed)
            except (KafkaException, TimeoutError, ValueError, RuntimeError, TypeError) as exc:
                self.errors += 1
                log.warning("consumer lag of group %s not read: %s", group, exc)
                up_m.add_metric([group], 0)
                continue
            up_m.add_metric([group], 1)
            for (topic, partition), behind in sorted(lag(committed, low, high).items()):
                labels = [group, topic, str(partition)]
                lag_m.add_metric(labels, behind)
                committed_m.add_metric(labels, committed.get((topic, partition), -1))
                if (topic, partition) not in seen_ends:
                    seen_ends.add((topic, partition))
                    end_m.add_metric([topic, str(partition)], high[(topic, partition)])
        errors_m = CounterMetricFamily("fraudstream_consumer_lag_errors", "Failed reads of "
                                       "a group's offsets.")
        errors_m.add_metric([], self.errors)
        yield from (lag_m, committed_m, end_m, up_m, errors_m)
