"""The stage director: follows the host's turns and sets OBS's scene, caption and product image.

Every change goes to the ObsController as a background task: OBS being slow, down or
restarting never delays a turn (the controller remembers the wanted state and applies it
when OBS is back).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from streambot.catalog import Catalog, LiveCatalog, Product, as_live
from streambot.config import Config
from streambot.stage.caption import Captions
from streambot.tasks import Background
from streambot.turn import Turn, TurnKind, TurnObserver

if TYPE_CHECKING:  # obsws-python is an optional extra
    from streambot.stage.obs import ObsController
    from streambot.stage.obs_scenes import State

log = logging.getLogger(__name__)


def media_stream_url(config: Config) -> str:
    """What OBS's Media Source should play: ``obs.stream_url``, else the stream sink's URL
    when that sink is on, else "" (the picture reaches OBS some other way)."""
    if config.obs.stream_url:
        return config.obs.stream_url
    return config.sinks.stream.url if config.sinks.stream.enabled else ""


# FFmpeg (inside OBS's Media Source) reads 20 frames of a new MPEG-TS stream to learn its
# frame rate before it plays the first one, and plays at stream speed from there: that backlog,
# plus decoding and OBS's frame queue, is the picture's lag (bench/obs_latency.py: ~1.1 s).
PROBED_FRAMES = 20
MEDIA_SOURCE_OVERHEAD_S = 0.2


def picture_delay(config: Config) -> float:
    """Seconds OBS's picture lags the presenter: ``obs.picture_delay_s``, or for "auto" the
    Media Source's lag when it plays the stream sink, else 0."""
    delay = config.obs.picture_delay_s
    if delay != "auto":
        return float(delay)
    if config.sinks.stream.enabled and media_stream_url(config) == config.sinks.stream.url:
        return PROBED_FRAMES / config.stream.fps + MEDIA_SOURCE_OVERHEAD_S
    return 0.0


def obs_controller(config: Config) -> ObsController:
    """An ObsController for the config's ``[obs]`` section (ImportError without obsws-python)."""
    from streambot.stage.obs import ObsController
    from streambot.stage.obs_scenes import ObsScenes

    cfg = config.obs
    return ObsController(
        cfg.host,
        cfg.port,
        cfg.password(),
        cfg.timeout_s,
        ObsScenes.from_config(cfg),
        stream_url=media_stream_url(config) or None,
    )


def product_for(turn: Turn, catalog: Catalog) -> Product | None:
    """The product a turn is about: a pitch's topic, else the first one its message names."""
    if turn.kind in (TurnKind.PITCH, TurnKind.SCRIPT) and turn.topic:
        return catalog.by_id(turn.topic)
    if turn.kind == TurnKind.SCRIPT:
        return None
    if turn.message is not None:
        found = catalog.find(turn.message.text)
        return found[0] if found else None
    return None


class StageDirector(TurnObserver):
    def __init__(
        self,
        controller: ObsController,
        catalog: Catalog | LiveCatalog,
        picture_delay_s: float = 0.0,
    ) -> None:
        """``catalog``: where products and their images come from (a live one is read at each
        turn, so an edited catalog is followed)."""
        self.controller, self.live = controller, as_live(catalog)
        self.captions = Captions(self.live)
        self.picture_delay_s = picture_delay_s
        self.background = Background("OBS change")

    def _send(
        self,
        state: State,
        caption: str | None = None,
        image: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Change OBS's state after ``delay`` (default: the picture's lag); every change waits
        the same time, so they reach OBS in the order they were made."""
        wait = self.picture_delay_s if delay is None else delay
        self.background.spawn(self._set_later(wait, state, caption, image), name=f"obs-{state}")

    async def _set_later(
        self, delay: float, state: State, caption: str | None, image: str | None
    ) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self.controller.set_state(state, caption, image)

    @property
    def catalog(self) -> Catalog:
        """The catalog as it is now."""
        return self.live.current

    def product_for(self, turn: Turn) -> Product | None:
        return product_for(turn, self.catalog)

    async def start(self) -> None:
        await self.controller.start()
        self._send("brb", caption="", delay=0)

    def on_air(self) -> None:
        self._send("idle", caption="")

    def turn_started(self, turn: Turn) -> None:
        product = self.product_for(turn)
        caption = self.captions.caption(turn) or (product.name if product else "")
        if product is not None and product.image:
            self._send("showcase", caption, product.image)
        else:
            self._send("talking", caption)

    def turn_ended(self, turn: Turn) -> None:
        self._send("idle", caption="")

    async def stop(self) -> None:
        # Pending delayed changes run first (same delay, earlier start), then brb at once.
        await self.background.settle()
        self._send("brb", caption="", delay=0)
        await self.background.settle()
        await self.controller.stop()
