"""Resumable publish: an interrupted run checkpoints what the broker acknowledged, and
``--resume`` publishes exactly the rest; a changed file is not resumed; a progress bar."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from infra.errors import ConfigurationError
from infra.settings import Settings
from replay import checkpoint
from replay.commands import publish_file
from replay.mapping import load_mapping
from replay.progress import ProgressBar
from replay.publish import PublishProgress, publish_history
from tests.unit.test_publish import FakeClock, FakeProducer, frame
from tests.unit.test_replay_helpers import write_user_files


class InterruptedProducer(FakeProducer):
    """Raises KeyboardInterrupt (Ctrl-C) when asked to produce message ``stop_at``."""

    def __init__(self, clock: FakeClock, stop_at: int) -> None:
        super().__init__(clock)
        self.stop_at = stop_at

    def produce(self, topic: str, value: Any = None, key: Any = None, *,
                on_delivery: Any = None) -> None:
        if len(self.messages) == self.stop_at:
            raise KeyboardInterrupt
        super().produce(topic, value, key, on_delivery=on_delivery)


def test_checkpoint_is_the_acknowledged_prefix() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock, fail_every=4)  # the 4th delivery fails
    marks: list[int] = []
    with pytest.raises(Exception, match="not delivered"):
        publish_history(frame([0, 1, 2, 3, 4, 5]), Settings(), producer=producer, clock=clock,
                        progress=None, on_checkpoint=marks.append)
    assert marks[-1] == 3  # rows 0-2 acknowledged, row 3 failed: resume from row 3


def test_interrupt_then_resume_publishes_each_row_once(tmp_path: Path) -> None:
    csv, mapping_file = write_user_files(tmp_path)
    mapping = load_mapping(mapping_file)
    settings = Settings(state_dir=tmp_path / "state", topic_transactions="tx")
    clock = FakeClock()
    first = InterruptedProducer(clock, stop_at=1234)
    with pytest.raises(KeyboardInterrupt):
        publish_file(settings, csv, mapping, producer=first, clock=clock, progress=False,
                     limit=3000)
    saved = checkpoint.load(checkpoint.default_path(settings.state_dir, csv, "tx"))
    assert saved is not None and saved.rows_done == 1234 and saved.rows_total == 3000

    second = FakeProducer(clock)
    result, start = publish_file(settings, csv, mapping, producer=second, clock=clock,
                                 progress=False, limit=3000, resume=True)
    assert start == 1234 and result.sent == 3000 - 1234
    ids = [json.loads(m[2])["transaction_id"] for m in first.messages + second.messages]
    assert len(ids) == len(set(ids)) == 3000

    _, again = publish_file(settings, csv, mapping, producer=FakeProducer(clock),
                            clock=clock, progress=False, limit=3000, resume=True)
    assert again == 3000  # nothing left: a finished run resumes to the end


def test_resume_refuses_a_different_file_or_mapping(tmp_path: Path) -> None:
    csv, mapping_file = write_user_files(tmp_path)
    settings = Settings(state_dir=tmp_path / "state")
    clock = FakeClock()
    publish_file(settings, csv, load_mapping(mapping_file), producer=FakeProducer(clock),
                 clock=clock, progress=False, limit=10)
    other = load_mapping(mapping_file, label_delay_days=1)
    with pytest.raises(ConfigurationError, match="different file, mapping"):
        publish_file(settings, csv, other, producer=FakeProducer(clock), clock=clock,
                     progress=False, limit=10, resume=True)


def test_progress_bar_lines() -> None:
    stream = io.StringIO()
    bar = ProgressBar(offset=50, width=10, stream=stream)
    bar(PublishProgress(50, 40, 0, 2.0, "2025-01-06T00:00:00.000Z", total=150))
    bar(PublishProgress(150, 150, 0, 4.0, "2025-01-07T00:00:00.000Z", done=True, total=150))
    first, last = stream.getvalue().splitlines()
    assert first.startswith("[#####.....]  50.0% 100/200 25/s eta 4s acked 40")
    assert last.startswith("[##########] 100.0% 200/200") and "done in 4.0s" in last
