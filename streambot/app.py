"""Builds the pipeline from the config, supervises its tasks and shuts down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streambot.brain.factory import build_brain
from streambot.catalog import LiveCatalog
from streambot.chat.base import ChatSource
from streambot.chat_feed import ChatFeed
from streambot.clock import Clock, DeviceClock, MonotonicClock, VirtualClock, responsive_clock
from streambot.config import Config, ConfigError
from streambot.controls import LiveShow, OperatorPanel, PanelFactory
from streambot.face.base import EngineFace
from streambot.face.factory import build_face, slow_face_policy
from streambot.host import Host
from streambot.inbox import Inbox
from streambot.ingest import Ingest
from streambot.metrics import Metrics, serve_metrics
from streambot.preflight import preflight
from streambot.production import TurnProducer
from streambot.runtime.base import RemoteEngine
from streambot.script.model import ScriptError, default_script, load_script
from streambot.script.runner import ScriptRunner
from streambot.stage.director import StageDirector, obs_controller, picture_delay
from streambot.stage.face_driver import FaceDriver
from streambot.stage.overlay.director import OverlayDirector, build_compositor
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.audio_device import AudioDeviceSink
from streambot.stage.sinks.base import Sink, StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.stage.sinks.file import FileSink
from streambot.stage.sinks.null import NullSink
from streambot.stage.sinks.stream import StreamSink
from streambot.stage.sinks.virtualcam import VirtualCamSink
from streambot.store import Store
from streambot.tasks import cancel_and_wait
from streambot.triage import Triage
from streambot.turn import ObserverWorker, TurnObserver
from streambot.turn_observers import ChatReplies, TurnMetrics, TurnRecorder
from streambot.voice.base import RemoteVoice
from streambot.voice.factory import build_voice

log = logging.getLogger(__name__)
OBSERVERS_DRAIN_S = 5.0  # at shutdown, how long the turn observers may take to catch up


@dataclass
class RunReport:
    seconds: float
    frames: int
    fps: float
    late_frames: int
    sink_drops: int
    turns: int
    unavailable_sinks: dict[str, str] = field(default_factory=dict)


def build_sinks(config: Config) -> list[Sink]:
    sinks: list[Sink] = []
    s = config.sinks
    if s.file.enabled:
        sinks.append(FileSink(s.file.path, s.file.preset, s.file.crf))
    if s.stream.enabled:
        sinks.append(
            StreamSink(
                s.stream.url,
                video_bitrate=s.stream.video_bitrate,
                audio_bitrate=s.stream.audio_bitrate,
                gop_seconds=s.stream.gop_seconds,
                preset=s.stream.preset,
            )
        )
    if s.virtualcam.enabled:
        sinks.append(VirtualCamSink(s.virtualcam.device))
    if s.audio_device.enabled:
        device: str | int | None = s.audio_device.device or None
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        sinks.append(AudioDeviceSink(device, s.audio_device.latency_s))
    if s.null.enabled or not sinks:
        sinks.append(NullSink())
    return sinks


def default_clock(config: Config) -> Clock:
    """Realtime runs with a sound card are paced by the card (once it opens, see
    ``App.run``), others by the monotonic clock; fast runs by a virtual clock."""
    if not config.stream.realtime:
        return VirtualClock()
    if config.sinks.audio_device.enabled:
        return DeviceClock()  # on the monotonic clock until the card is attached
    return MonotonicClock()


CATALOG_POLL_S = 2.0
STORE_PRUNE_EVERY_S = 3600.0


class App:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        extra_sources: list[ChatSource] | None = None,
        turn_observers: list[TurnObserver] | None = None,
        panel: PanelFactory | None = None,
    ) -> None:
        """``panel``: makes the operator's web page for ``[panel] enabled`` (the panel sits a
        layer above the daemon, so whoever starts the daemon hands it in: ``cli`` does)."""
        preflight(config)  # a bad path or value stops here, naming its key
        self.config = config
        cfg = config
        self.clock = clock or default_clock(cfg)
        self.metrics = Metrics()
        self.store = Store(cfg.store.path)
        # The one live catalog: triage, the brain and the stage read it, and reading it is
        # what picks up an edited file (``LiveCatalog.current``).
        self.catalog = LiveCatalog(cfg.brain.catalog.path or None)
        self.brain, self.catalog_brain = build_brain(cfg, self.catalog)
        self.script = self._script()
        self.voice = build_voice(cfg)
        self.metrics.watch_voice(self.voice_health)
        self.face = build_face(cfg)
        self.inbox = Inbox(cfg.ingest.queue_size)
        self.triage = Triage(cfg.triage, self.catalog)
        self.ingest = Ingest(
            self.store,
            self.triage,
            self.inbox,
            self.clock,
            self.metrics,
            cfg.ingest.interrupt_priority,
            cfg.ingest.gift_window_s,
        )
        self.stop = asyncio.Event()
        self.chat = ChatFeed(cfg, self.ingest, self.clock, self.stop, extra_sources)
        self.sources, self.http_source = self.chat.sources, self.chat.http_source
        self.turn_observers = list(turn_observers or [])  # beyond the record, metrics, OBS
        self.fmt = StreamFormat(
            cfg.stream.width, cfg.stream.height, cfg.stream.fps, cfg.stream.sample_rate
        )
        self.sinks: SinkFanout | None = None
        self.overlay: OverlayDirector | None = None
        self.panel: OperatorPanel | None = None
        self._panel_factory = panel
        self.presenter: Presenter | None = None
        self.host: Host | None = None
        self.producer: TurnProducer | None = None
        self.observers: list[ObserverWorker] = []
        # what the operator's panel may see and do (it never gets the App)
        self.show = LiveShow(
            lambda: self.host,
            self.script,
            self.ingest,
            self.catalog,
            self.health,
            fps=cfg.stream.fps,
            font=cfg.overlay.font,
        )

    def health(self) -> dict:
        """What /healthz answers: not ok while the presenter is not running or any configured
        sink or chat source is down (reconnecting, failed, unavailable, restarting)."""
        p = self.presenter
        sinks = self.sinks.health() if self.sinks else []
        sources = self.chat.health()
        voice = self.voice_health()
        face = self.face_health()
        running = p is not None and not self.stop.is_set()
        return {
            "ok": running
            and all(s["state"] == "up" for s in sinks)
            and all(s["state"] in ("up", "ended") for s in sources)
            and voice["state"] == "up"
            and (face is None or face["state"] == "up"),
            "frames": p.stats.frames if p else 0,
            "late_frames": p.stats.late_frames if p else 0,
            "late_not_ready": p.stats.not_ready if p else 0,
            "late_missed_slots": p.stats.missed_slots if p else 0,
            "inbox": len(self.inbox),
            "inbox_waiting": self.inbox.waiting,
            "sinks": sinks,
            "sources": sources,
            "voice": voice,
            **({"face": face} if face is not None else {}),
        }

    def face_health(self) -> dict[str, Any] | None:
        """The face server's state and who renders (None: the face renders here)."""
        face = self.face
        if isinstance(face, EngineFace) and isinstance(face.engine, RemoteEngine):
            return face.engine.health()
        return None

    def voice_health(self) -> dict:
        """The configured voice: a TTS server's own figures (requests, fallbacks, broken-off
        sentences, its breaker; down while the breaker keeps it out), and the sentences any
        voice lost to unplayable audio."""
        backend = self.config.voice.backend
        report: dict[str, Any]
        if isinstance(self.voice, RemoteVoice):
            report = self.voice.health()
        else:
            report = {"name": backend, "backend": backend, "state": "up"}
        report["unplayable"] = self.producer.sound.unsound if self.producer is not None else 0
        return report

    def request_stop(self) -> None:
        if not self.stop.is_set():
            log.info("stopping: finishing the current frame, closing sinks and the store")
            self.stop.set()

    async def run(self, seconds: float | None = None) -> RunReport:
        """Run the stream until stopped (a signal, ``request_stop``, a core task's crash) or
        for ``seconds`` of stream time; closes everything it opened."""
        with responsive_clock():
            return await self._run(seconds)

    async def _run(self, seconds: float | None) -> RunReport:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        director = self._director()
        self._build_stage(director)
        if director is not None:
            await director.start()
        self.ingest.resume(self.config.ingest.resume_min_priority)
        metrics_runner = await self._serve_metrics()
        await self._open_panel()
        if director is not None:
            director.on_air()
        started = time.perf_counter()
        observing = [
            asyncio.create_task(worker.run(), name=f"observer-{type(worker.observer).__name__}")
            for worker in self.observers
        ]
        tasks = self._start_tasks(seconds)
        try:
            await self._supervise(tasks)
        finally:
            self.stop.set()
            await cancel_and_wait(tasks)  # a lost cancel must not keep the daemon from exiting
            await self._observed_all(observing)
            await self._close(director, metrics_runner)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return self._report(time.perf_counter() - started)

    def _build_stage(self, director: StageDirector | None) -> None:
        """The sinks, the presenter and the host, and who observes the host's turns."""
        cfg = self.config
        self.sinks = SinkFanout(build_sinks(cfg), self.fmt, cfg.sinks.queue_frames)
        self._pace_on_the_sound_card()
        self.overlay = self._overlay()
        self.presenter = Presenter(
            self.face,
            self.sinks,
            self.clock,
            cfg.stream.fps,
            cfg.stream.sample_rate,
            buffer_s=cfg.face.buffer_s,
            max_behind_s=cfg.stream.max_behind_s,
            metrics=self.metrics,
            compositor=self.overlay.compositor if self.overlay is not None else None,
        )
        observers: list[TurnObserver] = [
            TurnRecorder(self.store),
            TurnMetrics(self.metrics),
            ChatReplies(self.chat.reply),
            *([director] if director is not None else []),
            *([self.overlay] if self.overlay is not None else []),
            *self.turn_observers,
        ]
        # each on its own queue and task: nothing an observer does can delay a frame
        self.observers = [ObserverWorker(observer) for observer in observers]
        faces = FaceDriver(self.face, self.presenter, self.clock, slow_face_policy(cfg, self.face))
        self.producer = TurnProducer(
            self.brain,
            self.voice,
            faces,
            self.presenter,
            max_reply_chars=cfg.host.max_reply_chars,
            reword_script=cfg.script.reword,
        )
        self.host = Host(
            cfg.host,
            self.ingest,
            self.producer,
            self.store,
            self.clock,
            idle_pitch_after_s=cfg.triage.idle_pitch_after_s,
            observers=self.observers,
            script=self.script,
        )

    async def _serve_metrics(self) -> web.AppRunner | None:
        cfg = self.config.metrics
        if not cfg.enabled:
            return None
        try:
            return await serve_metrics(
                self.metrics, cfg.host, cfg.port, self.health, cfg.allowed_hosts
            )
        except OSError as exc:
            log.error("metrics endpoint unavailable (%s); continuing without it", exc)
            return None

    def _start_tasks(self, seconds: float | None) -> list[asyncio.Task]:
        assert self.presenter is not None and self.host is not None
        max_frames = None if seconds is None else round(seconds * self.config.stream.fps)
        overlay = [self.overlay.run(self.stop)] if self.overlay is not None else []
        return [
            asyncio.create_task(self.presenter.run(self.stop, max_frames), name="presenter"),
            asyncio.create_task(self.host.run(self.stop), name="host"),
            asyncio.create_task(self._thank_gifts(), name="gifts"),
            asyncio.create_task(self._watch_catalog(), name="catalog"),
            asyncio.create_task(self._prune_store(), name="store-prune"),
            *self.chat.pumps(),
            *(asyncio.create_task(run, name="overlay") for run in overlay),
        ]

    async def _observed_all(self, observing: list[asyncio.Task]) -> None:
        """Let the observers handle the last turn's events (its record in the store), then
        stop their tasks; an observer stuck past ``OBSERVERS_DRAIN_S`` is cut off, logged."""
        drained = asyncio.gather(*(worker.drain() for worker in self.observers))
        try:
            await asyncio.wait_for(drained, OBSERVERS_DRAIN_S)
        except TimeoutError:
            log.warning("turn observers still busy after %.0f s; stopping them", OBSERVERS_DRAIN_S)
        await cancel_and_wait(observing)

    async def _close(
        self, director: StageDirector | None, metrics_runner: web.AppRunner | None
    ) -> None:
        """Close what ``run`` opened, the store last (the sinks may still log)."""
        self.ingest.refusals.flush()  # the last window's refusals, summed up
        if self.sinks is not None:
            await self.sinks.close()
        if director is not None:
            await director.stop()
        if isinstance(self.voice, RemoteVoice):  # a TTS server's HTTP session
            await self.voice.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        if self.panel is not None:
            await self.panel.stop()
        self.store.close()

    def _report(self, seconds: float) -> RunReport:
        assert self.presenter is not None and self.sinks is not None and self.host is not None
        stats = self.presenter.stats
        return RunReport(
            seconds=seconds,
            frames=stats.frames,
            fps=stats.fps(),
            late_frames=stats.late_frames,
            sink_drops=self.sinks.dropped,
            turns=self.host.turns_played,
            unavailable_sinks=dict(self.sinks.unavailable),
        )

    def _pace_on_the_sound_card(self) -> None:
        """Hand the card's sample counter to the clock, if the audio device sink opened."""
        if not isinstance(self.clock, DeviceClock) or self.sinks is None:
            return
        for worker in self.sinks.workers:
            sink = worker.sink
            if isinstance(sink, AudioDeviceSink) and sink.buffer is not None:
                self.clock.attach(sink.buffer)
                log.info("pacing the stream on the audio device's clock")
                # The voice is heard output_delay_s after the presenter hands it over; a
                # camera shows its frame at once, so hold the pictures back as long.
                frames = round(sink.output_delay_s * self.fmt.fps)
                for name in self.sinks.delay_pictures(frames):
                    log.info(
                        "%s held back %d frames (%.0f ms) to stay in sync with the voice",
                        name,
                        frames,
                        frames * 1000 / self.fmt.fps,
                    )
                return
        log.info("audio device unavailable; pacing the stream on the monotonic clock")

    async def _open_panel(self) -> None:
        """The operator's web page, when ``[panel] enabled`` (a taken port is said, and the
        stream goes on without it)."""
        if not self.config.panel.enabled or self.presenter is None:
            return
        if self._panel_factory is None:
            log.warning("[panel] enabled, but this daemon was started without one: no panel")
            return
        panel = self._panel_factory(self.show, self.config.panel)
        try:
            await panel.start()
        except OSError as exc:
            log.error("panel unavailable (%s); continuing without it", exc)
            await panel.stop()
            return
        self.panel = panel
        self.presenter.on_frame = panel.preview.offer

    def _script(self) -> ScriptRunner:
        """The sales script (``[script] path``), else the idle pitch rotation; a script that
        cannot be used stops the start, naming the file, segment and problem."""
        cfg = self.config
        quiet = cfg.triage.idle_pitch_after_s
        if not cfg.script.path:
            script = default_script()
        else:
            try:
                script = load_script(
                    cfg.script.path, self.catalog.current, cfg.host.max_reply_chars
                )
            except ScriptError as exc:
                raise ConfigError(str(exc)) from None
        return ScriptRunner(script, quiet, self.catalog, on_countdown=self._countdown)

    def _countdown(self, deadline: float, text: str) -> None:
        """A script's countdown segment started: the overlay counts down to ``deadline``."""
        if self.overlay is not None:
            self.overlay.countdown_until(deadline, text or None)

    def _overlay(self) -> OverlayDirector | None:
        """The overlays drawn into the picture, when ``[overlay] enabled``."""
        cfg = self.config.overlay
        if not cfg.enabled:
            return None
        compositor = build_compositor(cfg, self.fmt.width, self.fmt.height)
        return OverlayDirector(cfg, compositor, self.catalog, self.clock)

    def _director(self) -> StageDirector | None:
        cfg = self.config.obs
        if not cfg.enabled:
            return None
        try:
            controller = obs_controller(self.config)
        except ImportError as exc:
            log.error("OBS control unavailable (%s): pip install 'streambot[stage]'", exc)
            return None
        return StageDirector(controller, self.catalog, picture_delay(self.config))

    async def _watch_catalog(self) -> None:
        """Read the catalog every few seconds, so that in a quiet stream an edit is still
        logged (a broken one as an error) soon after it is saved. Not needed for answers to
        be right: each message and turn reads the catalog, which checks its file."""
        while not self.stop.is_set():
            await self.clock.sleep(CATALOG_POLL_S)
            self.catalog.reload_if_changed()  # what every read of ``current`` does

    async def _prune_store(self) -> None:
        """Keep the event log to ``store.keep_days`` (checked at start and hourly) so a host
        that runs for months does not fill its disk."""
        keep_days = self.config.store.keep_days
        if keep_days <= 0:
            return
        while not self.stop.is_set():
            try:
                # Off the loop: the batches are short, but a big backlog is many of them.
                removed = await asyncio.to_thread(self.store.prune, time.time() - keep_days * 86400)
                if removed:
                    log.info("store: removed %d messages older than %g days", removed, keep_days)
            except Exception:  # a full or locked disk must not stop the stream
                log.exception("store pruning failed; will try again in an hour")
            await self.clock.sleep(STORE_PRUNE_EVERY_S)

    async def _thank_gifts(self) -> None:
        """Turn each window of gifts into one thanks message (on the pipeline clock)."""
        while not self.stop.is_set():
            await self.clock.sleep(0.25)
            self.ingest.flush_gifts()

    async def _supervise(self, tasks: list[asyncio.Task]) -> None:
        """Run until stop; a core task that dies is logged and the app stops cleanly."""
        core = {t for t in tasks if t.get_name() in ("presenter", "host")}
        stopper = asyncio.create_task(self.stop.wait())
        try:
            pending = set(tasks) | {stopper}
            while not self.stop.is_set():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done & core:
                    if not task.cancelled() and task.exception() is not None:
                        log.error("%s crashed", task.get_name(), exc_info=task.exception())
                        self.request_stop()
        finally:
            stopper.cancel()
