"""Stream feature worker (faust-streaming): transactions + labels -> card and terminal state
-> Feast -> scorer.

Agents (one process; scale out by running more, Kafka spreads the partitions):

1. ``features`` on ``transactions`` (micro-batches): validates (bad input goes to
   ``transactions.dlq`` with its reason and ``topic[partition]@offset``), folds each
   transaction into its card's state (table ``card-state``) and sends it with its card
   features to the repartition topic, in its terminal's partition (one message per
   partition and micro-batch holds a JSON list of items and watermark marks).
2. ``labels`` on ``labels``: each label waits until its card partition caught up with its
   ``label_time``, is resolved to its transaction's terminal through the card state and sent
   to the repartition topic too. Both agents announce per-partition watermarks there.
3. ``terminals`` on the repartition topic: merges items in ``(time, kind, id)`` order
   (:mod:`features.merge`), folds them into table ``terminal-state``, writes each batch's full
   vectors to Feast's online store (and the offline part files), and only then forwards the
   transactions to ``transactions.featurized`` for the scorer (per batch, one message per
   card partition holding a JSON array of records: per-record sends cost more than the
   rest of the stage).

Tables have changelogs and, with ``faust_store=rocksdict://``, a local RocksDB copy, so a
restarted worker recovers. Offsets are committed only for acknowledged messages; items
waiting in the merge or label queues are held un-acknowledged, and acknowledgements go out in
offset order (:mod:`features.acks`: faust would otherwise commit past a held message), so a
crash redelivers them. A card state keeps the position of the last transaction folded in, so
redelivered transactions are recognised; labels are idempotent: nothing is double-counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import TP

from features.acks import InOrderAcks, OffsetGuard
from features.core import Event
from features.offline import OfflineWriter
from features.redis_layout import card_state_key, terminal_state_key
from features.stages import CardStage, Message, Released, TerminalStage, WarmStates
from features.store import OnlineFeatures, Row, Snapshot
from infra.errors import InvalidInput
from infra.settings import Settings
from streams.dlq import dead_letter_record, make_dead_letter
from streams.schema import Transaction, parse_transaction
from streams.serde import dumps

log = logging.getLogger("fraudstream.features.worker")

CARD_TABLE = "card-state"
TERMINAL_TABLE = "terminal-state"
READY_MARKER = "Worker ready"  # faust logs it once partitions are assigned and recovered
MARKER_REFRESH_S = 1.0
WATCHDOG_S = 5.0
STALL_S = 30.0  # a merge head unmoved this long is logged with what holds it
BATCH_BYTES = 512 * 1024  # repartition message payload limit (Kafka's default max is 1 MiB)
FORWARD_RECORDS = 100  # transactions per message to the scorer (bounds a scorer micro-batch)


def to_event(txn: Transaction) -> Event:
    return Event(txn.transaction_id, txn.event_ms, txn.card_id, txn.merchant_id, txn.amount,
                 txn.channel, txn.country, txn.device_id, txn.terminal_id)


def dead_letter_value(raw: bytes | None, reason: str, message: Any) -> bytes:
    letter = make_dead_letter(
        key=message.key, value=raw, error=reason, topic=message.topic,
        partition=message.partition, offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000), worker="features",
    )
    return dead_letter_record(letter)[1]


@contextmanager
def in_event(event: Any) -> Iterator[None]:
    """Run table reads/writes as on behalf of ``event`` (its partition picks the table's).

    Faust takes the partition from the stream's current event; micro-batches and buffered
    items are processed outside of it, so the stage names the message explicitly.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class TableStore:
    """A Faust table as a :class:`~features.stages.StateStore`."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str, handle: Any) -> Any:
        with in_event(handle):
            return self.table.get(key)

    def put(self, key: str, value: Any, handle: Any) -> None:
        with in_event(handle):
            self.table[key] = value


def limit_fetch_wait(wait_ms: int) -> None:
    """Make faust's consumer wait at most ``wait_ms`` for a fetch (faust fixes 1500 ms).

    aiokafka keeps one fetch in flight per broker and leaves partitions with unread records
    out of it. So once the busy partitions were fetched, the next fetch often holds only
    idle ones (the labels topic, quiet partitions): the broker holds it for the full wait,
    and every other partition waits with it. At 500-900 tx/s this left the worker reading
    its input about 1.5 s late per hop (3 s of features latency), whatever its CPU.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = getattr(AIOKafkaConsumerThread, "_fraudstream_create", None)
    if create is None:
        create = AIOKafkaConsumerThread._create_worker_consumer
        AIOKafkaConsumerThread._fraudstream_create = create  # type: ignore[attr-defined]

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def faust_store(settings: Settings) -> str:
    # faust's rocksdb:// store uses rocksdict when it is installed (it is a dependency)
    return "rocksdb://" if settings.faust_store == "rocksdict://" else settings.faust_store


def create_app(settings: Settings, online: OnlineFeatures | None = None) -> faust.App:
    """The Faust app of the feature worker (nothing connects until it runs)."""
    from features.labels import parse_label

    online = online or OnlineFeatures(settings)
    offline = OfflineWriter(settings, settings.feature_offline_flush_s)
    limit_fetch_wait(settings.feature_fetch_wait_ms)
    n = settings.topic_partitions
    project = settings.feast_project
    app = faust.App(
        settings.consumer_group_features,
        broker=[f"kafka://{h}" for h in settings.bootstrap_servers.split(",")],
        store=faust_store(settings), datadir=str((settings.state_dir / "faust").resolve()),
        topic_partitions=n, topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest", web_enabled=False,
        processing_guarantee="at_least_once",
        # The terminal stage holds messages unacknowledged until the merge releases them;
        # waiting for every message to be acked before a rebalance or a shutdown would then
        # never end. Unacked messages are redelivered, and redelivery is not double-counted.
        stream_wait_empty=False,
        producer_max_request_size=max(1_048_576, settings.max_message_bytes * 4),
        # Many small messages (repartition items, changelog states): batch them into few
        # produce requests (the default 16 KiB batch held a handful of card states).
        producer_linger=settings.feature_linger_ms / 1000.0,
        producer_max_batch_size=1_048_576,
        consumer_max_fetch_size=max(1_048_576, settings.max_message_bytes * 4),
        # a restarted worker rejoins once the killed member's session has expired
        broker_session_timeout=settings.feature_session_timeout_ms / 1000.0,
        broker_heartbeat_interval=settings.feature_session_timeout_ms / 3000.0,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=n)

    source, labels = raw_topic(settings.topic_transactions), raw_topic(settings.topic_labels)
    repartition = raw_topic(settings.topic_feature_repartition)
    featurized, dlq = raw_topic(settings.topic_featurized), raw_topic(settings.topic_dlq)
    # values: the JSON bytes the stages encode once (also what goes to Redis)
    schema: faust.Schema = faust.Schema(key_type=str, value_type=bytes, key_serializer="raw",
                                        value_serializer="raw")
    # Table partitions follow the message a state is written for (Faust's default): a card's
    # state lives in the partition number its transactions (and labels) arrive on, whatever
    # partitioner upstream uses; a terminal's in its repartition partition.
    card_table = app.Table(CARD_TABLE, default=None, partitions=n, schema=schema)
    term_table = app.Table(TERMINAL_TABLE, default=None, partitions=n, schema=schema)
    card = CardStage(TableStore(card_table), warm=WarmStates(settings.feature_warm_states))
    terminal = TerminalStage(TableStore(term_table), n,
                             warm=WarmStates(settings.feature_warm_states))
    progress: dict[TP, int] = {}  # next offset after the last processed message
    emit_lock = asyncio.Lock()  # keeps each source's repartition messages in order
    last_marks: dict[int, tuple[list[bytes], float]] = {}
    flushing: asyncio.Future[Any] | None = None  # the offline part file being written
    # labels and repartition messages are held past their batch: acknowledged in order only
    label_acks, term_acks = InOrderAcks(), InOrderAcks()
    # messages the consumer skipped are read again; the repartition topic has no holes
    input_guard, repartition_guard = OffsetGuard(), OffsetGuard(tries=None)

    def guard_for(tp: TP) -> OffsetGuard:
        return repartition_guard if tp.topic == settings.topic_feature_repartition else input_guard

    def committed(tp: TP) -> int | None:
        """The consumer group's committed offset of ``tp`` as faust last knew it."""
        return cast(int | None, getattr(app.consumer, "_committed_offset", {}).get(tp))

    async def accepted(event: Any) -> bool:
        """Whether to process ``event``: not after offsets the consumer skipped (then it
        seeks back to them) nor a copy of one processed; others are never acknowledged."""
        message = event.message
        tp = message.tp
        process, seek_to = guard_for(tp).check(tp, message.offset, committed(tp))
        if not process:
            message.incref()  # comes again after the seek (or was processed already)
            if seek_to is not None:
                log.warning("the consumer skipped %s offsets %d-%d: reading them again", tp,
                            seek_to, message.offset - 1)
                await app.consumer.seek_wait({tp: seek_to})
        return process

    def assigned_card_partitions() -> list[int]:
        try:
            assigned = app.consumer.assignment()
        except Exception:  # noqa: BLE001 - consumer not started yet
            return []
        return sorted(tp.partition for tp in assigned if tp.topic == settings.topic_transactions)

    def caught_up(tp: TP) -> bool:
        try:
            high = app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not assigned / consumer not started yet
            return False
        if high is None:
            return False
        nxt = progress.get(tp)
        if nxt is None:
            nxt = committed(tp) or 0
        return nxt >= high

    partition_of = RepartitionPartitioner(n)

    async def emit(messages: list[Message], marks: list[bytes]) -> list[Any]:
        """Send items and watermark marks (under the lock): one message per repartition
        partition holding a JSON list of its items in order, then every mark (a mark must
        follow the items it covers)."""
        batches: dict[int, list[bytes]] = {}
        for key, value in messages:
            batches.setdefault(partition_of(key or b""), []).append(value)
        if marks:
            for k in range(n):
                batches.setdefault(k, []).extend(marks)
        return [await repartition.send(key=None, value=payload, partition=k)
                for k, values in batches.items() for payload in batch_payloads(values)]

    def announce(partition: int, messages: list[Message], marks: list[bytes],
                 handles: list[Any]) -> None:
        """Collect a card partition's due labels (their handles, to ack once sent) and its
        watermarks when they changed or are due for a refresh."""
        txn_idle = caught_up(TP(settings.topic_transactions, partition))
        for message, handle in card.release_labels(partition, txn_idle):
            if message is not None:
                messages.append(message)
            handles.append(handle)
        current = card.markers(partition, txn_idle,
                               caught_up(TP(settings.topic_labels, partition)))
        sent = last_marks.get(partition)
        now = time.monotonic()
        if sent is None or sent[0] != current or now - sent[1] > MARKER_REFRESH_S:
            last_marks[partition] = (current, now)
            marks += current

    async def emit_announced(partitions: Iterable[int], messages: list[Message]) -> list[Any]:
        marks: list[bytes] = []
        handles: list[Any] = []
        for partition in sorted(partitions):
            announce(partition, messages, marks, handles)
        futures = await emit(messages, marks)
        for handle in handles:
            handle.ack()
        label_acks.flush()
        return futures

    @app.agent(source, name="features")
    async def featurize(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(
            settings.feature_batch_size, within=settings.feature_batch_ms / 1000.0
        ):
            out: list[Message] = []
            dead: list[tuple[bytes | None, bytes]] = []
            touched: set[int] = set()
            for event in events:
                message = event.message
                if not await accepted(event):
                    continue
                progress[message.tp] = message.offset + 1
                try:
                    txn = parse_transaction(event.value or b"", settings.max_message_bytes)
                except InvalidInput as exc:
                    log.warning("dead-letter %s[%d]@%d: %s", message.topic, message.partition,
                                message.offset, exc.reason)
                    dead.append((message.key, dead_letter_value(event.value, exc.reason,
                                                                message)))
                    continue
                record = txn.to_record()
                record["ingest_ms"] = int(message.timestamp * 1000)
                repartitioned = card.transaction(message.partition, to_event(txn), record, event,
                                                message.offset)
                if repartitioned is not None:  # None: redelivered, sent before the crash
                    out.append(repartitioned)
                touched.add(message.partition)
            async with emit_lock:  # every partition: others may have become idle meanwhile
                pending = await emit_announced(touched.union(assigned_card_partitions()), out)
            pending += [await dlq.send(key=k, value=v) for k, v in dead]
            await asyncio.gather(*pending)
            states = card.snapshots()
            await _write_with_retry(online, [], [
                (card_state_key(project, c), served) for c, served in states])
            card.flush()  # after delivery: a persisted card state implies its items were sent

    async def forward(done: list[Released]) -> list[Any]:
        """Send transactions to the scorer: one message per partition of their cards (the
        partition a card-keyed message would take), holding a JSON array of records in
        release order, at most ``FORWARD_RECORDS`` each."""
        batches: dict[int, list[bytes]] = {}
        for r in done:
            batches.setdefault(partition_of(r.card_id.encode()), []).append(dumps(r.record))
        return [await featurized.send(key=None, value=payload, partition=k)
                for k, values in batches.items()
                for payload in batch_payloads(values, limit_items=FORWARD_RECORDS)]

    @app.agent(labels, name="labels")
    async def take_labels(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(
            settings.feature_batch_size, within=settings.feature_batch_ms / 1000.0
        ):
            touched: set[int] = set()
            dead: list[tuple[bytes | None, bytes]] = []
            for event in events:
                message = event.message
                if not await accepted(event):
                    continue
                progress[message.tp] = message.offset + 1
                try:
                    label = parse_label(event.value or b"", settings.max_message_bytes)
                except InvalidInput as exc:
                    dead.append((message.key, dead_letter_value(event.value, exc.reason,
                                                                message)))
                    label_acks.hold(event)  # done, but acknowledged after the labels before it
                    continue
                # held until released (in ``announce``)
                card.label(message.partition, label, label_acks.hold(event, pending=1))
                touched.add(message.partition)
            async with emit_lock:
                pending = await emit_announced(touched, [])
            pending += [await dlq.send(key=k, value=v) for k, v in dead]
            await asyncio.gather(*pending)

    @app.agent(repartition, name="terminals")
    async def terminals(stream: faust.StreamT) -> None:
        nonlocal flushing
        async for events in cast(faust.Stream, stream).take_events(
            settings.feature_batch_size, within=settings.feature_batch_ms / 1000.0
        ):
            touched: set[int] = set()
            for event in events:
                if not await accepted(event):
                    continue
                partition = event.message.partition
                payload = orjson.loads(event.value or b"[]")
                hold = term_acks.hold(event)  # until its items buffered in the merge are released
                for value in payload if isinstance(payload, list) else [payload]:
                    hold.pending += terminal.receive(partition, value, hold)
                touched.add(partition)
            released = [r for p in sorted(touched) for r in terminal.release(p)]
            done = [r for r, _ in released if r is not None]
            late = [r for r in done if r.late]
            if late:  # redelivered (row exists) or out-of-order data (write if missing)
                exists = await asyncio.to_thread(online.exists, [r.transaction_id for r in late])
                skip = {r.transaction_id for r, hit in zip(late, exists, strict=True) if hit}
            else:
                skip = set()
            rows: list[Row] = [(r.transaction_id, r.card_id, r.terminal, r.event_ms, r.features)
                               for r in done if r.transaction_id not in skip]
            states = terminal.snapshots()
            await _write_with_retry(online, rows, [
                (terminal_state_key(project, t), stored) for t, stored in states])
            terminal.flush()  # after the write: a persisted terminal state implies its rows
            pending = await forward(done)
            await asyncio.gather(*pending)
            for _, handle in released:
                handle.ack()
            term_acks.flush()
            if settings.feature_offline_from_stream:
                offline.add(rows)
                if offline.due() and (flushing is None or flushing.done()):
                    # in the background: a part file is not on the scorer's path
                    flushing = asyncio.ensure_future(asyncio.to_thread(offline.flush))
                    flushing.add_done_callback(_log_failure)

    @app.timer(settings.feature_idle_ms / 1000.0)
    async def announce_idle() -> None:
        partitions = assigned_card_partitions()
        if not partitions:
            return
        async with emit_lock:
            pending = await emit_announced(partitions, [])
        await asyncio.gather(*pending)

    stuck: dict[int, tuple[int, float]] = {}  # partition -> (head time, since)

    @app.timer(WATCHDOG_S)
    async def watchdog() -> None:
        """Log what a merge buffer waits for when its oldest item has not moved for
        ``STALL_S``: the sources holding it back, and the card partitions' positions."""
        now = time.monotonic()
        report = []
        for partition, merger in sorted(terminal.mergers.items()):
            holding = merger.holding()
            if holding is None:
                stuck.pop(partition, None)
                continue
            head, since = stuck.get(partition, (None, now))
            if head != holding[0]:
                since = now
            stuck[partition] = (holding[0], since)
            if now - since >= STALL_S:
                report.append(f"r{partition}: {len(merger)} items from t={holding[0]} held "
                              f"{now - since:.0f}s by {', '.join(holding[1]) or '-'}")
        if not report:
            return
        consumer = app.consumer
        positions = []
        for partition in assigned_card_partitions():
            for topic, name in ((settings.topic_transactions, "t"), (settings.topic_labels, "l")):
                tp = TP(topic, partition)
                try:
                    high = consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - diagnostics only
                    high = None
                positions.append(f"{name}{partition} next={progress.get(tp)} high={high} "
                                 f"idle={caught_up(tp)}")
            positions.append(f"l{partition} queued={len(card.pending.get(partition, ()))} "
                             f"t{partition} wm={card.txn_wm.get(partition)}")
        log.warning("merge stalled: %s | card partitions: %s | fetch paused=%s buffered=%s "
                    "flow=%s", "; ".join(report), "; ".join(positions),
                    sorted(getattr(consumer, "_paused_partitions", ())),
                    sorted(getattr(consumer, "_buffered_partitions", ())),
                    getattr(consumer, "flow_active", None))
        for partition in list(stuck):
            stuck[partition] = (stuck[partition][0], now)  # next report after STALL_S again

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: Any, revoked: set[TP], **kwargs: Any) -> None:
        for tp in revoked:  # held messages go to the new owner again (never acked here)
            guard_for(tp).revoke(tp)
            if tp.topic in (settings.topic_transactions, settings.topic_labels):
                card.forget(tp.partition)  # its card states may change elsewhere now
            if tp.topic == settings.topic_labels:
                card.revoke(tp.partition)
                label_acks.revoke(tp)
            elif tp.topic == settings.topic_feature_repartition:
                terminal.revoke(tp.partition)
                term_acks.revoke(tp)
            progress.pop(tp, None)

    return app


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("offline part file not written: %r", future.exception())


class RepartitionPartitioner:
    """The repartition partition of a terminal key: what Kafka's default partitioner
    (murmur2, as aiokafka's ``DefaultPartitioner``) gives the key, so terminal states stay
    where keyed messages put them; cached, as aiokafka's murmur2 is pure Python."""

    def __init__(self, partitions: int, cache_size: int = 100_000) -> None:
        self.partitions = partitions
        self.cache_size = cache_size
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            hit = self._cache[key] = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        return hit


def batch_payloads(values: list[bytes], limit: int = BATCH_BYTES,
                   limit_items: int | None = None) -> Iterator[bytes]:
    """JSON arrays of ``values`` (each already JSON), split to stay under ``limit`` bytes
    (and ``limit_items`` values).

    >>> list(batch_payloads([b'1', b'22', b'3'], limit=8))
    [b'[1,22]', b'[3]']
    >>> list(batch_payloads([b'1', b'22', b'3'], limit_items=2))
    [b'[1,22]', b'[3]']
    """
    chunk: list[bytes] = []
    size = 2
    for value in values:
        if chunk and (size + len(value) + 1 > limit
                      or (limit_items is not None and len(chunk) >= limit_items)):
            yield b"[" + b",".join(chunk) + b"]"
            chunk, size = [], 2
        chunk.append(value)
        size += len(value) + 1
    if chunk:
        yield b"[" + b",".join(chunk) + b"]"


async def _write_with_retry(online: OnlineFeatures, rows: list[Row],
                            snapshots: list[Snapshot]) -> None:
    """Write rows and state snapshots to the online store in one round trip, retrying with
    backoff: nothing is forwarded unwritten."""
    if not rows and not snapshots:
        return
    delay = 0.1
    while True:
        try:
            await asyncio.to_thread(online.write, rows, snapshots)
            return
        except Exception as exc:  # noqa: BLE001 - the online store being down is retried
            log.error("online store write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the feature worker in this process until SIGTERM/SIGINT."""
    import gc

    from features.labels import ensure_feature_topics

    online = OnlineFeatures(settings)
    started = time.monotonic()
    ensure_feature_topics(settings)
    online.apply()
    online.feature_service()
    log.info("feast ready in %.1fs", time.monotonic() - started)
    app = create_app(settings, online)
    gc.collect()
    gc.freeze()  # start-up objects out of the collector's way: shorter pauses
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
