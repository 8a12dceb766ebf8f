"""Stream feature worker (faust-streaming): transactions -> card state -> Feast -> scorer.

For each micro-batch taken from ``transactions`` it

1. validates every message (bad ones go to ``transactions.dlq`` with the reason and their
   source ``topic[partition]@offset``; the worker never stops on bad input),
2. folds each valid transaction into its card's state (a Faust table with a changelog, so a
   restarted worker recovers it) through the pure core, :func:`features.core.update`,
3. writes the batch's feature rows to Feast's Redis online store in one call, and only then
4. forwards the transactions to the internal ``transactions.featurized`` topic, which the
   scorer consumes: a transaction reaches the scorer only after its features are readable.

Offsets are acknowledged by Faust after the batch body finished (``take_events``), so a crash
redelivers the batch; the core's redelivery cache returns the same features for a transaction
it has already seen, so state is not double-counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust

from features.core import CardState, Event, update
from features.store import OnlineFeatures
from infra.errors import InvalidInput
from infra.settings import Settings
from streams.dlq import dead_letter_record, make_dead_letter
from streams.schema import Transaction, parse_transaction
from streams.serde import dumps

log = logging.getLogger("fraudstream.features.worker")

STATE_TABLE = "card-state"
READY_MARKER = "Worker ready"  # faust logs it once partitions are assigned and recovered


def to_event(txn: Transaction) -> Event:
    return Event(
        txn.transaction_id,
        txn.event_ms,
        txn.card_id,
        txn.merchant_id,
        txn.amount,
        txn.channel,
        txn.country,
        txn.device_id,
    )


def dead_letter_value(raw: bytes | None, reason: str, message: Any) -> bytes:
    letter = make_dead_letter(
        key=message.key,
        value=raw,
        error=reason,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        worker="features",
    )
    return dead_letter_record(letter)[1]


def create_app(settings: Settings, online: OnlineFeatures | None = None) -> faust.App:
    """The Faust app of the feature worker (nothing connects until it runs)."""
    online = online or OnlineFeatures(settings)
    app = faust.App(
        settings.consumer_group_features,
        broker=[f"kafka://{h}" for h in settings.bootstrap_servers.split(",")],
        store=settings.faust_store,
        datadir=str((settings.state_dir / "faust").resolve()),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        processing_guarantee="at_least_once",
        producer_max_request_size=max(1_048_576, settings.max_message_bytes * 4),
        consumer_max_fetch_size=max(1_048_576, settings.max_message_bytes * 4),
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    source = raw_topic(settings.topic_transactions)
    featurized = raw_topic(settings.topic_featurized)
    dlq = raw_topic(settings.topic_dlq)
    # The changelog is partitioned by the producer's key hash (murmur2, as the upstream
    # producers use), so a card's state lives in the partition its transactions arrive on.
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )

    @app.agent(source, name="features")
    async def featurize(stream: faust.StreamT) -> None:
        # take_events is on faust.Stream, not (yet) on its StreamT interface
        async for events in cast(faust.Stream, stream).take_events(
            settings.feature_batch_size, within=settings.feature_batch_ms / 1000.0
        ):
            rows: list[tuple[str, str, int, tuple[float, ...]]] = []
            forward: list[tuple[bytes, bytes]] = []
            dead: list[tuple[bytes | None, bytes]] = []
            for event in events:
                message = event.message
                try:
                    txn = parse_transaction(event.value or b"", settings.max_message_bytes)
                except InvalidInput as exc:
                    log.warning(
                        "dead-letter %s[%d]@%d: %s",
                        message.topic,
                        message.partition,
                        message.offset,
                        exc.reason,
                    )
                    dead.append((message.key, dead_letter_value(event.value, exc.reason, message)))
                    continue
                current = table.get(txn.card_id)
                state = CardState.from_dict(current) if current else None
                state, feats = update(state, to_event(txn))
                table[txn.card_id] = state.to_dict()
                rows.append((txn.transaction_id, txn.card_id, txn.event_ms, feats))
                record = txn.to_record()
                record["ingest_ms"] = int(message.timestamp * 1000)
                forward.append((txn.card_id.encode(), dumps(record)))
            await _write_with_retry(online, rows)
            pending = [await featurized.send(key=k, value=v) for k, v in forward]
            pending += [await dlq.send(key=k, value=v) for k, v in dead]
            await asyncio.gather(*pending)

    return app


async def _write_with_retry(online: OnlineFeatures, rows: list[Any]) -> None:
    """Write to the online store, retrying with backoff: nothing is forwarded unwritten."""
    delay = 0.1
    while True:
        try:
            await asyncio.to_thread(online.write, rows)
            return
        except Exception as exc:  # noqa: BLE001 - the online store being down is retried
            log.error("online store write failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the feature worker in this process until SIGTERM/SIGINT."""
    online = OnlineFeatures(settings)
    started = time.monotonic()
    online.apply()
    online.feature_service()
    log.info("feast ready in %.1fs", time.monotonic() - started)
    app = create_app(settings, online)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
