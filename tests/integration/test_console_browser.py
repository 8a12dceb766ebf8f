"""The analyst console in a real browser, with the stream running on real Kafka.

Debian's headless Chromium (``/usr/bin/chromium``, driven through ``/usr/bin/chromedriver``
by selenium; nothing is downloaded) signs in as alice, waits for a live alert in the queue,
opens it with the keyboard, checks its reasons, gives the verdict ``fraud`` with the ``f``
key; the test then reads that label from topic ``labels`` with alice's name. A second
browser session, bob, cannot claim the case meanwhile. The screenshots of the queue and of
the case are written to ``docs/`` (docs/console.md shows them).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from features.core import FEATURE_NAMES
from infra.settings import Settings
from infra.testing import services_required
from infra.workers import WorkerProcess
from replay.history import iter_transactions
from replay.simulator import SimulationConfig, simulate
from streams.producer import TransactionProducer
from tests.integration.deployed import drain, prepare, running_workers, split_days

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"
ALICE = "alice-Browser-7c2e9f"
BOB = "bob-Browser-4d8a1b0"


def _chromium_or_fail() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    reason = "Debian's chromium and chromium-driver are not installed (make setup installs them)"
    if services_required():
        pytest.fail(f"{reason}; CI: failing, not skipping")
    pytest.skip(reason)


class Browser:
    """One headless Chromium session with its own empty profile."""

    def __init__(self, base: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base = base
        self.profile = tempfile.mkdtemp(prefix="fraudstream-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                     "--window-size=1440,1000"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def sign_in(self, key: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.get(f"{self.base}/console/login")
        self.driver.find_element(By.ID, "key").send_keys(key)
        self.driver.find_element(By.ID, "sign-in").click()
        # signed in once the queue page names the analyst: navigating away before that
        # aborts the sign-in's POST (no session cookie, the next page is the sign-in again)
        self.wait(lambda d: d.find_elements(By.ID, "analyst"), 30, "sign-in did not complete")

    def wait(self, condition: Any, timeout: float, what: str) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(
            condition, message=what)

    def press(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(keys).perform()

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(SimulationConfig(n_customers=400, n_terminals=200, days=24, seed=11))


@pytest.fixture
def console(settings: Settings, frame: pd.DataFrame, tmp_path: Path) -> Iterator[
        tuple[Settings, str]]:
    _chromium_or_fail()
    s = settings.model_copy(update={
        "api_keys": SecretStr(f"alice:{ALICE},bob:{BOB}"), "api_publish_transactions": False})
    prepare(s, split_days(frame, 20)[0], tmp_path)
    with running_workers(s) as workers:
        api = WorkerProcess("api", ["api"], s).start()
        base = f"http://{s.api_host}:{s.api_port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and api.alive():
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail(f"the API did not become ready:\n{api.log_tail()}")
            with TransactionProducer(s) as producer:
                for record in iter_transactions(split_days(frame, 20)[1].head(2000)):
                    producer.send(record)
            yield s, base
        finally:
            api.stop()
            logs = "\n".join(f"--- {n}:\n{p.log_tail(15)}" for n, p in
                             {**workers, "api": api}.items())
            print(logs)


def test_an_analyst_works_a_live_alert_with_the_keyboard(console: tuple[Settings, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    s, base = console
    alice, bob = Browser(base), Browser(base)
    try:
        alice.sign_in(ALICE)
        alice.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#queue tr[data-href]")) >= 3,
                   240, "no live alerts reached the queue")
        assert alice.driver.find_element(By.ID, "analyst").text == "alice"
        time.sleep(2.5)  # one more poll, so the screenshot shows a settled queue
        DOCS.mkdir(exist_ok=True)
        alice.driver.save_screenshot(str(DOCS / "console-queue.png"))

        alice.press("j")
        alice.press("k")
        alice.press(Keys.ENTER)  # the first (newest) alert
        alice.wait(lambda d: d.find_elements(By.ID, "case"), 30, "the case did not open")
        tid = alice.driver.find_element(By.ID, "case").get_attribute("data-tid")
        reasons = [row.find_elements(By.TAG_NAME, "td")[0].text for row in
                   alice.driver.find_elements(By.CSS_SELECTOR, "#reasons tbody tr")]
        assert reasons and set(reasons) <= set(FEATURE_NAMES), reasons
        alice.driver.save_screenshot(str(DOCS / "console-case.png"))

        bob.sign_in(BOB)
        bob.driver.get(f"{base}/console/case/{tid}")
        banner = bob.wait(lambda d: d.find_elements(By.ID, "claimed"), 30, "no claim banner")
        assert "alice" in banner[0].text
        assert not bob.driver.find_element(By.CSS_SELECTOR,
                                           "button[data-verdict=fraud]").is_enabled()
        bob.press("g")  # the shortcut does nothing on a case someone else holds

        alice.press("n")
        alice.press("card testing pattern")
        alice.press(Keys.ESCAPE)  # leave the note field
        alice.press("f")
        alice.wait(lambda d: "Recorded fraud" in d.find_element(By.ID, "verdict-result").text,
                   30, "the verdict was not recorded")
    finally:
        alice.quit()
        bob.quit()

    labels = [json.loads(m.value() or b"{}") for m in
              drain(s, s.topic_labels, 1, timeout=60, settle=2)]
    mine = [label for label in labels if label.get("transaction_id") == tid]
    assert len(mine) == 1, labels
    assert {k: mine[0][k] for k in ("label", "source", "actor", "note")} == {
        "label": "fraud", "source": "analyst", "actor": "alice", "note": "card testing pattern"}
    assert mine[0]["label_time"].endswith("Z")
