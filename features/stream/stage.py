"""The stream stage: ``transactions`` + ``labels`` -> features -> decisions, in one hop.

A confluent-kafka consume-transform-produce loop. Both inputs are keyed by card and have the
same partition count; the range assignor gives partition ``p`` of both to the same worker,
which owns the card states of ``p`` (:mod:`features.stream.cards`). Per micro-batch, in ONE
Kafka transaction: the released records (:mod:`features.stream.release`) are processed
(:mod:`features.stream.batch`: card states, labels, terminal states and feature rows written
to Redis — the batch is scored from the vectors just computed while Redis runs that write,
and nothing is produced before it succeeded), and ``scores``,
``alerts``, dead letters, the card-state changelog and the input offsets are committed
together. So a crash anywhere rewinds to the last commit and the redo is deterministic;
Redis writes of a rolled-back batch are recognised by the id registry and reused.

Failures: any Kafka or Redis error in a batch aborts it; the worker then drops its clients
and working state, backs off (0.5 s doubling to 5 s) and resumes from the committed offsets
with new clients — a fenced or fatal producer included. Every blocking call is bounded
(``stream_call_timeout_s``); SIGTERM stops the loop after the current batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from features.stream import changelog
from features.stream.batch import Outcome, process
from features.stream.cards import CardStates
from features.stream.decide import Decider
from features.stream.items import Rejected, parse_label_message, parse_txn_message
from features.stream.metrics import StageMetrics
from features.stream.redis_io import StageRedis
from features.stream.release import TP, Buffers, Item
from infra.errors import ServiceError
from infra.settings import Settings
from streams.clients import make_consumer, make_producer
from streams.dlq import dead_letter_record, make_dead_letter
from streams.serde import dumps

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY
# A transaction begun right after the previous commit finds the coordinator still writing
# that commit's markers; its AddOffsetsToTxn / AddPartitionsToTxn get CONCURRENT_TRANSACTIONS
# and librdkafka retries after retry.backoff.ms (100 by default): 100+ ms stalls in
# send_offsets_to_transaction were the stage's p99 at 1,000 tx/s. The Java producer retries
# this error after 20 ms (KAFKA-5477); the retries back off exponentially from here up to
# retry.backoff.max.ms (1 s), so an unreachable broker is not hammered.
TXN_RETRY_BACKOFF_MS = 10

log = logging.getLogger("fraudstream.features.stream")

READY_MARKER = "stream stage ready"
LAG_EVERY_S = 5.0
PHASES = ("consume", "ingest", "release", "process", "produce", "offsets", "commit", "account",
          "control", "models", "lag", "other")


class AssignmentFailed(RuntimeError):
    """Restoring the states of newly assigned partitions failed (the clients are reset)."""


def encode_record(record: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of an output record, non-finite floats as ``null``: what
    :func:`streams.serde.dumps` (``nan_as_null``) writes, ~40x faster (orjson), falling back
    to it for a type orjson does not know.

    >>> encode_record({"score": float("nan"), "features": {"a": 1e-7}, "v": (1.0,)})
    b'{"score":null,"features":{"a":1e-7},"v":[1.0]}'
    """
    try:
        return orjson.dumps(record, option=_ORJSON_OPTS)
    except TypeError:
        return dumps(record, nan_as_null=True)


class StreamStage:
    """Owns its consumer, transactional producer, card states and buffers."""

    def __init__(self, settings: Settings, decider: Decider, redis: StageRedis,
                 metrics: StageMetrics, instance: str = "0",
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.s, self.decider, self.redis, self.m = settings, decider, redis, metrics
        self.instance, self.wall_ms = instance, wall_ms
        self.cards = CardStates()
        self.buffers = Buffers()
        self.offsets: dict[TP, int] = {}  # next offset to commit, as last committed by us
        self.paused: set[TP] = set()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self.decided = 0
        self._lag_at = 0.0
        self._phases = {name: metrics.phase_seconds.labels(phase=name) for name in PHASES}
        self._in_txns = metrics.records_in.labels(input="transactions")
        self._in_labels = metrics.records_in.labels(input="labels")
        self._clock = time.perf_counter()
        self._closed = self._clock  # when the last batch stopped gathering

    def _tick(self, phase: str) -> None:
        """Charge the wall time since the previous tick to ``phase``."""
        now = time.perf_counter()
        self._phases[phase].inc(now - self._clock)
        self._clock = now

    # -- clients ---------------------------------------------------------------------------
    def _open(self) -> None:
        s = self.s
        name = f"{s.consumer_group_stream}-{self.instance}"
        producer = make_producer(s, transactional_id=name, linger_ms=2,
                                 retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
                                 transaction_timeout_ms=s.stream_transaction_timeout_ms)
        producer.init_transactions(s.stream_call_timeout_s * 3)
        self._producer = producer
        consumer = make_consumer(
            s, s.consumer_group_stream, group_instance_id=name,
            session_timeout_ms=s.stream_session_timeout_ms,
            partition_assignment_strategy="range", enable_partition_eof=True,
            max_poll_interval_ms=120_000)
        consumer.subscribe([s.topic_transactions, s.topic_labels],
                           on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_revoke)
        self._consumer = consumer

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close: %s", exc)
            self._consumer = None
        self._producer = None  # its open transaction is fenced by the next one's init

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        try:
            self._assign(consumer, tps)
        except Exception as exc:
            # Half-done (states dropped, the restore failed): forget every offset, so the
            # reopened clients restore every partition they get, and leave by _reset (not a
            # rewind with these clients, whose assignment has no restored states).
            self.offsets = {}
            raise AssignmentFailed(f"partition assignment failed: {exc}") from exc

    def _assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        started = time.monotonic()
        committed = consumer.committed(tps, timeout=self.s.stream_call_timeout_s * 2)
        broker = {(tp.topic, tp.partition): tp.offset for tp in committed}
        mine = self.offsets
        stale = sorted({tp[1] for tp, off in broker.items()
                        if not self.cards.owns(tp[1]) or mine.get(tp, OFFSET_INVALID) != off})
        keep = {p for (_, p) in broker}
        for p in list(self.cards.committed):
            if p not in keep or p in stale:
                self.cards.drop_partition(p)
        for p, states in changelog.restore(self.s, stale).items():
            self.cards.load_partition(p, states)
        self.offsets = {tp: off for tp, off in broker.items()}
        self.buffers = Buffers()
        self.buffers.assign(broker, self.wall_ms())
        self.paused.clear()
        self.m.restore_seconds.observe(time.monotonic() - started)
        log.info("%s: partitions %s (restored %s in %.2fs)", READY_MARKER, sorted(keep), stale,
                 time.monotonic() - started)

    def _on_revoke(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        self.buffers.revoke((tp.topic, tp.partition) for tp in tps)
        self.cards.rollback()

    # -- loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.decider.start()
        backoff = 0.5
        while not stop.is_set():
            try:
                if self._consumer is None:
                    self._open()
                self._step()
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - any failure rewinds, nothing is lost
                self.m.aborts.labels(cause=type(exc).__name__).inc()
                known = isinstance(exc, KafkaException | ServiceError | BufferError)
                (log.warning if known else log.exception)(
                    "batch failed (%s); rewinding to the last commit in %.1fs", exc, backoff)
                if not (isinstance(exc, ServiceError) and self._rewind()):
                    self._reset()
                stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
        self._close()

    def _rewind(self) -> bool:
        """After a failure outside Kafka (Redis): abort the open transaction and seek back to
        the committed offsets with the same clients. False when that is not possible (the
        caller then resets everything)."""
        producer, consumer = self._producer, self._consumer
        if producer is None or consumer is None:
            return False
        try:
            producer.abort_transaction(self.s.stream_call_timeout_s)
        except KafkaException as exc:
            if "No ongoing transaction" not in str(exc) and "not in progress" not in str(exc):
                return False
        self.cards.rollback()
        self.buffers.clear(self.wall_ms())
        log.info("rewinding to %s", sorted(self.offsets.items()))
        try:
            for (topic, p), off in self.offsets.items():
                start = off if off >= 0 else OFFSET_BEGINNING
                consumer.seek(TopicPartition(topic, p, start))
            if self.paused:
                consumer.resume([TopicPartition(*tp) for tp in self.paused])
                self.paused.clear()
        except KafkaException as exc:
            log.warning("rewind by seek failed (%s); reopening the clients", exc)
            return False
        return True

    def _reset(self) -> None:
        """Drop clients and working state: the next :meth:`_open` resumes from commits."""
        if self._producer is not None:
            try:
                self._producer.abort_transaction(self.s.stream_call_timeout_s)
            except KafkaException:
                pass  # fenced or unreachable: the next producer's init aborts it
        self.cards.rollback()
        self._close()
        self.redis.close()

    def _step(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise ServiceError("stage has no consumer")
        self._tick("other")
        messages = self._gather(consumer)
        self._tick("consume")
        now = self.wall_ms()
        for msg in messages:
            self._ingest(msg, now)
        self._tick("ingest")
        released = self.buffers.release(now, self.s.stream_batch_size)
        self._tick("release")
        if released:
            self._transact(released)
        self._flow_control(consumer)
        self._tick("control")
        self.decider.maybe_swap()
        self._tick("models")
        if time.monotonic() - self._lag_at > LAG_EVERY_S:
            self._observe_lag(consumer)
            self._tick("lag")

    def _gather(self, consumer: Consumer) -> list[Message]:
        """The next batch's messages: until ``stream_batch_records`` records came or
        ``stream_batch_ms`` passed since the previous batch closed (its processing and
        commit count toward the wait), then whatever is already fetched, up to
        ``stream_batch_size``. So a slow stream makes few transactions of several records
        each, a busy one batches of ``stream_batch_records`` without waiting, and a backlog
        full batches."""
        s = self.s
        deadline = self._closed + s.stream_batch_ms / 1000
        out: list[Message] = []
        records = 0
        while records < s.stream_batch_records:
            wait = deadline - time.perf_counter()
            if wait <= 0:
                break
            got = consumer.consume(s.stream_batch_records - records, wait)
            out.extend(got)
            records += sum(1 for m in got if m.error() is None)  # end-of-partition events
        if records < s.stream_batch_size:
            out.extend(consumer.consume(s.stream_batch_size - records, 0))
        self._closed = time.perf_counter()
        return out

    def _ingest(self, msg: Message, now: int) -> None:
        topic, p, err = msg.topic() or "", msg.partition() or 0, msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self.buffers.end((topic, p))
            elif err.fatal():
                raise KafkaException(err)
            else:
                log.warning("consumer: %s", err)
            return
        position = (topic, p, msg.offset() or 0)
        ts = msg.timestamp()[1]
        item: Item
        if topic == self.s.topic_transactions:
            item = parse_txn_message(msg.key(), msg.value(), position, ts,
                                     self.s.max_message_bytes)
            self._in_txns.inc()
        else:
            item = parse_label_message(msg.key(), msg.value(), position, ts,
                                       self.s.max_message_bytes)
            self._in_labels.inc()
        self.buffers.add((topic, p), item, now)

    def _observe_lag(self, consumer: Consumer) -> None:
        """Consumer lag per owned partition: its end minus the next offset to commit.

        The end is the one the last fetch response carried (``cached``): asking the broker
        instead queues behind the consumer's long-poll fetch on the same connection (up to
        ``fetch.wait.max.ms`` per partition, measured ~1 s a call), which stalled the loop.
        A paused partition's end is as old as its last fetch."""
        self._lag_at = time.monotonic()
        for (topic, p), committed in self.offsets.items():
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            except KafkaException:
                return  # the broker is away: the next batch's failure handles it
            if high < 0:
                continue  # nothing fetched from it yet
            lag = high - committed if committed >= 0 else high
            self.m.lag.labels(topic=topic, partition=str(p)).set(max(0, lag))

    def _flow_control(self, consumer: Consumer) -> None:
        cap = self.s.stream_max_buffered
        for tp in list(self.buffers.items):
            n = self.buffers.buffered(tp)
            if n > cap and tp not in self.paused:
                consumer.pause([TopicPartition(*tp)])
                self.paused.add(tp)
            elif n < cap // 2 and tp in self.paused:
                consumer.resume([TopicPartition(*tp)])
                self.paused.discard(tp)

    # -- one Kafka transaction ---------------------------------------------------------------
    def _transact(self, released: dict[TP, list[Any]]) -> None:
        producer, consumer = self._producer, self._consumer
        if producer is None or consumer is None:
            raise ServiceError("stage has no clients")
        started = time.perf_counter()
        timeout = self.s.stream_call_timeout_s
        producer.begin_transaction()
        outcome = process(released, self.s.topic_transactions, self.cards, self.redis,
                          self.decider, self.wall_ms())
        self._tick("process")
        self._produce(producer, outcome)
        self._tick("produce")
        offsets = {tp: items[-1].position[2] + 1 for tp, items in released.items()}
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            consumer.consumer_group_metadata(), timeout)
        self._tick("offsets")
        producer.commit_transaction(timeout)
        self._tick("commit")
        self.m.batches.inc()
        self.cards.commit(outcome.changelog)
        self.offsets.update(offsets)
        self._account(outcome, time.perf_counter() - started)
        self._tick("account")

    def _produce(self, producer: Producer, out: Outcome) -> None:
        s = self.s
        for d in out.decided:
            key = d.item.event.card_id.encode()
            producer.produce(s.topic_scores, key=key, value=encode_record(d.score))
            if d.alert is not None:
                producer.produce(s.topic_alerts, key=key, value=encode_record(d.alert))
        for role, rej in out.rejected:
            topic = s.topic_dlq if role == "transactions" else s.topic_labels_dlq
            letter_key, letter = self._letter(rej)
            producer.produce(topic, key=letter_key, value=letter)
        for p, card, stored, _ in out.changelog:
            producer.produce(s.topic_card_changelog, key=card.encode(), value=stored,
                             partition=p)
        producer.poll(0)

    def _letter(self, rej: Rejected) -> tuple[bytes | None, bytes]:
        topic, partition, offset = rej.position
        letter = make_dead_letter(key=rej.key, value=rej.value, error=rej.reason, topic=topic,
                                  partition=partition, offset=offset,
                                  timestamp_ms=rej.timestamp_ms, worker="stream")
        log.info("dead letter %s[%d]@%d: %s", topic, partition, offset, rej.reason)
        return dead_letter_record(letter)

    def _account(self, out: Outcome, seconds: float) -> None:
        m, now = self.m, self.wall_ms()
        m.batch_seconds.observe(seconds)
        m.records_out.labels(output="scores").inc(len(out.decided))
        m.records_out.labels(output="alerts").inc(sum(d.alert is not None for d in out.decided))
        m.records_out.labels(output="changelog").inc(len(out.changelog))
        for d in out.decided:
            m.publish_to_decision.observe(max(0, now - d.item.publish_ms) / 1000)
        for role, rej in out.rejected:
            m.dead_letters.labels(input=role, kind=rej.kind).inc()
        for late in out.late:
            m.late.labels(kind=late.kind).inc()
            log.info("late %s %s on %s (%d..%d)", late.kind, late.item_id, late.terminal,
                     late.from_ms, late.to_ms)
        for verdict, n in out.verdicts.items():
            if verdict != "new":
                m.ids.labels(verdict=verdict).inc(n)
        self.decided += len(out.decided)
