"""The panel in a real browser: Debian's chromium, headless, driven by Selenium through the
system chromedriver (never a driver or browser download), against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from streambot.app import App
from streambot.panel.server import Panel
from streambot.record import Record
from tests.integration.test_panel import panel_config

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def browser_or_skip():
    why = None
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        why = "selenium is not installed"
    if why is None and not (CHROMIUM and DRIVER):
        why = "Debian's chromium and chromium-driver are not installed"
    if why:
        if os.environ.get("STREAMBOT_REQUIRE_BROWSER"):
            pytest.fail(f"a real browser is required here: {why}")
        pytest.skip(why)


def chrome(lang: str = "en-US"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--lang={lang}",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    return webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))


class Daemon:
    """The app running on its own loop in a thread, so the test drives the browser freely."""

    def __init__(self, config) -> None:
        self.config, self.app = config, None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.app = App(self.config, panel=Panel)
        run = asyncio.create_task(self.app.run(None))
        while (
            self.app.panel is None
            or self.app.http_source is None
            or self.app.http_source.port is None
        ):
            await asyncio.sleep(0.02)
        self.ready.set()
        await run

    def call(self, fn):
        """Run ``fn()`` on the daemon's loop and return its result."""
        done = threading.Event()
        box = {}

        def run():
            box["value"] = fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(5)
        return box.get("value")

    def __enter__(self) -> Daemon:
        self.thread.start()
        assert self.ready.wait(20), "the daemon did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.app.request_stop)
        self.thread.join(20)


def wait_for(check, seconds: float = 10.0, shows=None):
    """Wait for ``check()`` to be truthy; on timeout say what ``shows()`` (the page's status
    line, say) read then, so a failure in CI explains itself."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    seen = f": the page shows {shows()!r}" if shows else ""
    raise AssertionError(f"timed out waiting for the page{seen}")


def _page_moved() -> tuple[type[Exception], ...]:
    """What the browser answers when an element was found just before the page re-rendered
    it (its tables are rebuilt on each state push) or laid it out again: under load headless
    chromium answers "element not interactable" as well as "stale element"."""
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        StaleElementReferenceException,
    )

    return (ElementNotInteractableException, StaleElementReferenceException)


def type_into(driver, selector: str, text: str) -> None:
    """Replace a field's text, finding the field again while the page moves it (the typing
    itself keeps the focus, and so the row, in place)."""
    from selenium.webdriver.common.by import By

    def typed() -> bool:
        try:
            field = driver.find_element(By.CSS_SELECTOR, selector)
            field.clear()
            field.send_keys(text)
            return field.get_attribute("value") == text
        except _page_moved():
            return False

    wait_for(typed)


def click(driver, selector: str) -> None:
    """Click an element once the browser lets it be clicked; one that never becomes
    clickable still fails the test when the wait runs out."""
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except _page_moved():
            return False

    wait_for(clicked)


def post_chat(port: int, user: str, text: str) -> dict:
    body = json.dumps({"user": user, "text": text}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/chat", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def test_the_panel_in_a_real_browser(fast_config, tmp_path):
    browser_or_skip()
    from selenium.webdriver.common.by import By

    config = panel_config(fast_config, tmp_path)
    config.chat.local.http, config.chat.local.port = True, 0
    with Daemon(config) as daemon:
        app = daemon.app
        driver = chrome()
        try:
            driver.get(f"http://127.0.0.1:{app.panel.port}/")
            wait_for(lambda: driver.find_element(By.ID, "conn").text == "live")
            # the preview updates: a JPEG shown, then another frame
            first = wait_for(lambda: driver.find_element(By.ID, "preview").get_attribute("src"))
            wait_for(lambda: driver.find_element(By.ID, "preview").get_attribute("src") != first)
            assert (
                driver.execute_script("return document.getElementById('preview').naturalWidth")
                == 480
            )
            # take over so the question waits in the queue, then post one to /chat
            click(driver, "#takeover")
            wait_for(lambda: app.host.taken_over)
            posted = time.monotonic()
            answer = post_chat(app.http_source.port, "ann", "how much is the lamp?")
            row = wait_for(
                lambda: driver.find_elements(
                    By.CSS_SELECTOR, f"#queue tr[data-id='{answer['id']}']"
                )
            )
            shown_after = time.monotonic() - posted
            assert "how much is the lamp?" in row[0].text and "question" in row[0].text
            # a price edit from the page, then hand back: the answer says the new price
            type_into(driver, "#products tr[data-id='lumadesk'] .price", "41")
            type_into(driver, "#products tr[data-id='lumadesk'] .stock", "5")
            # the operator looks away before saving: the table is rebuilt by the next push
            # (a second question guarantees one), and the unsaved edit survives it, marked
            driver.execute_script("document.activeElement.blur()")
            second = post_chat(app.http_source.port, "bo", "is the lamp in stock?")
            wait_for(
                lambda: driver.find_elements(
                    By.CSS_SELECTOR, f"#queue tr[data-id='{second['id']}']"
                )
            )
            lamp_row = "#products tr[data-id='lumadesk']"
            assert (
                driver.find_element(By.CSS_SELECTOR, f"{lamp_row} .price").get_attribute("value")
                == "41"
            )
            assert "unsaved" in driver.find_element(By.CSS_SELECTOR, lamp_row).get_attribute(
                "class"
            )
            click(driver, f"{lamp_row} .save")
            status = lambda: driver.find_element(By.ID, "status").text  # noqa: E731
            wait_for(lambda: "lumadesk: price 41 USD, stock 5" in status(), shows=status)
            wait_for(
                lambda: (
                    "unsaved"
                    not in driver.find_element(By.CSS_SELECTOR, lamp_row).get_attribute("class")
                )
            )
            click(driver, "#takeover")
            wait_for(lambda: not app.host.taken_over)
            # say a line from the page, and skip it once it is on air
            wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "#queue tr"), 20)
            driver.find_element(By.ID, "say-text").send_keys("Thanks for watching, friends!")
            click(driver, "#say")
            wait_for(
                lambda: daemon.call(
                    lambda: app.host.current is not None and app.host.current.kind == "say"
                ),
                20,
            )
            click(driver, "#skip")
            wait_for(lambda: "skipped" in status(), shows=status)
            driver.save_screenshot(str(tmp_path / "panel.png"))
        finally:
            driver.quit()
    with Record.open(config.store.path) as record:
        turns = [(t.kind, t.outcome, t.reply or "") for t in record.turns()]
        actions = [a.action for a in record.actions()]
    lamp = next(t for t in turns if t[0] == "answer")
    assert "$41" in lamp[2]  # the edited price, in the next answer
    assert ("say", "interrupted") in [t[:2] for t in turns]
    assert actions == ["takeover", "product", "takeover", "say", "skip"]
    print(f"chat message to its row on the page: {shown_after * 1000:.0f} ms")


def test_the_page_speaks_chinese_to_a_chinese_browser_and_refuses_a_wrong_token(
    fast_config, tmp_path, monkeypatch
):
    browser_or_skip()
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("STREAMBOT_PANEL_TOKEN", "panel-token-7d1c")
    config = panel_config(fast_config, tmp_path)
    config.chat.local.http, config.chat.local.port = True, 0
    with Daemon(config) as daemon:
        base = f"http://127.0.0.1:{daemon.app.panel.port}/"
        driver = chrome("zh-CN")
        try:
            driver.get(base + "?token=wrong")
            assert "missing or wrong token" in driver.page_source
            driver.get(base + "?token=panel-token-7d1c")
            wait_for(lambda: driver.find_element(By.ID, "conn").text == "直播中")
            assert driver.current_url == base  # the token is off the address bar and history
            cookie = driver.get_cookie("streambot_panel")
            assert cookie["httpOnly"] and "panel-token-7d1c" not in cookie["value"]
            assert driver.find_element(By.ID, "skip").text == "跳过"
            assert driver.find_element(By.ID, "takeover").text == "人工接管"
            driver.save_screenshot(str(tmp_path / "panel-zh.png"))
        finally:
            driver.quit()


def test_a_long_word_or_bidi_controls_from_chat_do_not_break_the_page(fast_config, tmp_path):
    browser_or_skip()
    from selenium.webdriver.common.by import By

    config = panel_config(fast_config, tmp_path)
    config.chat.local.http, config.chat.local.port = True, 0
    with Daemon(config) as daemon:
        app = daemon.app
        daemon.call(app.host.take_over)  # the message waits in the queue, shown
        driver = chrome()
        try:
            driver.get(f"http://127.0.0.1:{app.panel.port}/")
            wait_for(lambda: driver.find_element(By.ID, "conn").text == "live")
            text = "\u202eprice?\u202c " + "a" * 250
            answer = post_chat(app.http_source.port, "ann", text)
            row = wait_for(
                lambda: driver.find_elements(
                    By.CSS_SELECTOR, f"#queue tr[data-id='{answer['id']}']"
                )
            )
            assert "\u202e" not in row[0].text and "price?" in row[0].text
            width = "return [document.documentElement.scrollWidth, window.innerWidth]"
            page, window = driver.execute_script(width)
            assert page <= window  # the word wraps: no sideways scrolling
        finally:
            driver.quit()


def test_a_script_segment_whose_product_is_gone_shows_as_skipped_with_why(fast_config, tmp_path):
    browser_or_skip()
    from selenium.webdriver.common.by import By

    config = panel_config(fast_config, tmp_path)
    script = tmp_path / "script.toml"
    script.write_text(
        '[[segment]]\nid = "hello"\ntext = "Welcome!"\nquiet_s = 1\n\n'
        '[[segment]]\nid = "bottle"\nproduct = "thermo"\n'
        'text = "The {name} is only {price} today."\ntrigger = "time"\n'
        "after_s = 1\n",
        encoding="utf-8",
    )
    config.script.path = str(script)
    config.chat.local.http, config.chat.local.port = True, 0
    catalog = Path(config.brain.catalog.path)
    blocks = Path(config.brain.catalog.path).read_text(encoding="utf-8").split("[[product]]")
    with Daemon(config) as daemon:
        driver = chrome()
        try:
            driver.get(f"http://127.0.0.1:{daemon.app.panel.port}/")
            wait_for(lambda: driver.find_element(By.ID, "conn").text == "live")
            # the seller removes the bottle from the catalog while live
            catalog.write_text(
                "[[product]]".join(b for b in blocks if 'id = "thermo"' not in b), encoding="utf-8"
            )
            shown = wait_for(
                lambda: driver.find_elements(By.CSS_SELECTOR, "#script .skipped"), seconds=20
            )
            assert "bottle" in shown[0].text and "thermo" in shown[0].text
        finally:
            driver.quit()
