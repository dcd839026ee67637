"""The panel open in a real browser while the stream runs: late frames at 25 fps, and how soon
a chat message shows in the page's queue.

Runs the daemon on its embedded defaults in real time (1280x720, file sink encoding H.264)
with the panel open in headless chromium (Debian's, through the system chromedriver), posts a
question to /chat every --interval seconds and times each one from the POST to its row on the
page (the page's DOM, polled by the test every 10 ms). With --screenshots DIR it saves the page
in English and Chinese there.

    python bench/panel.py --seconds 300 --interval 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration

from selenium.webdriver.common.by import By

from streambot.config import Config
from streambot.logs import setup_logging
from tests.integration.test_panel_browser import Daemon, chrome, post_chat

QUESTIONS = [
    "how much is the lamp?",
    "保温杯多少钱？",
    "do the earbuds ship fast?",
    "is the grinder in stock?",
]


def build_config(work: Path) -> Config:
    config = Config()
    config.chat.local.port = 0
    config.metrics.enabled = False
    config.panel.port = 0
    config.store.path = str(work / "bench.db")
    config.sinks.null.enabled = False
    config.sinks.file.enabled = True
    config.sinks.file.path = str(work / "bench.mp4")
    return config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--screenshots", default="")
    return parser


def _report(
    args: argparse.Namespace, frames: int, late: int, preview: int, delays: list[float]
) -> None:
    print(f"# bench/panel.py --seconds {args.seconds:g} --interval {args.interval:g}")
    print(
        f"# {platform.processor() or platform.machine()}, python {sys.version.split()[0]}; "
        "defaults, 1280x720, file sink, headless chromium with the panel open"
    )
    print(f"frames {frames}, late frames {late}, preview JPEGs {preview}")
    if delays:
        ordered = sorted(delays)
        print(
            f"chat message to its row on the page: n {len(delays)}, median "
            f"{statistics.median(ordered) * 1e3:.0f} ms, p95 "
            f"{ordered[int(len(ordered) * 0.95)] * 1e3:.0f} ms"
        )


def main() -> int:
    args = _parser().parse_args()
    setup_logging("WARNING")
    delays = []
    with tempfile.TemporaryDirectory() as tmp, Daemon(build_config(Path(tmp))) as daemon:
        app = daemon.app
        url = f"http://127.0.0.1:{app.panel.port}/"
        driver = chrome()
        try:
            driver.get(url)
            started = time.monotonic()
            i = 0
            while time.monotonic() - started < args.seconds:
                posted = time.monotonic()
                answer = post_chat(app.http_source.port, f"viewer{i}", QUESTIONS[i % 4])
                row = (
                    f"#queue tr[data-id='{answer['id']}'], #decisions tr[data-id='{answer['id']}']"
                )
                while not driver.find_elements(By.CSS_SELECTOR, row):
                    if time.monotonic() - posted > 5:
                        break
                    time.sleep(0.01)
                else:
                    delays.append(time.monotonic() - posted)
                i += 1
                time.sleep(max(0.0, posted + args.interval - time.monotonic()))
            if args.screenshots:
                out = Path(args.screenshots)
                out.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out / "panel.png"))
        finally:
            driver.quit()
        if args.screenshots:
            driver = chrome("zh-CN")
            try:
                driver.get(url)
                time.sleep(3)
                driver.save_screenshot(str(Path(args.screenshots) / "panel-zh.png"))
            finally:
                driver.quit()
        stats = app.presenter.stats
        frames, late = stats.frames, stats.late_frames
        preview = app.panel.preview.encoded
    _report(args, frames, late, preview, delays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
