"""Places the overlay layers in the frame and blends them over each frame the presenter shows.

Each overlay has a slot; the label, the countdown and the card each sit in a corner (stacked
in that order when they share one) and the caption is centred at the bottom. Changing a slot
re-places its corner: cheap, since a layer's arrays do not depend on where it is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping

import numpy as np
from PIL import Image

from streambot.stage.overlay.layer import Layer

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
STACK_ORDER = ("label", "countdown", "card")  # from the corner inwards
CAPTION = "caption"
MARGIN = 0.025  # of the frame height


class Compositor:
    def __init__(self, width: int, height: int, corners: Mapping[str, str]) -> None:
        """``corners``: slot -> one of CORNERS, for each slot of STACK_ORDER used."""
        for slot, corner in corners.items():
            if corner not in CORNERS:
                raise ValueError(f"overlay {slot}: corner {corner!r} is not one of {CORNERS}")
        self.width, self.height = width, height
        self.corners = dict(corners)
        self.margin = max(1, round(height * MARGIN))
        self._images: dict[str, Image.Image] = {}
        self._layers: dict[str, Layer] = {}
        self._order: list[Layer] = []  # blended in this order: the caption last, on top
        self.recent_seconds: deque[float] = deque(maxlen=4096)  # per composed frame

    # -- changing what is shown (on the event loop) ------------------------------------
    def show(self, slot: str, image: Image.Image | None, layer: Layer | None = None) -> None:
        """Show ``image`` in ``slot`` (None clears it); ``layer``: its Layer, made off the
        loop already (``Layer.from_image(image, 0, 0)``), else made here."""
        if image is None:
            self._images.pop(slot, None)
            self._layers.pop(slot, None)
        else:
            layer = layer or Layer.from_image(image, 0, 0)
            if layer is None:  # nothing visible in it
                return self.show(slot, None)
            self._images[slot], self._layers[slot] = image, layer
        self._place()

    def shown(self, slot: str) -> Image.Image | None:
        return self._images.get(slot)

    def box(self, slot: str) -> tuple[int, int, int, int] | None:
        """Where ``slot``'s visible pixels are in the frame: (x, y, width, height)."""
        layer = self._layers.get(slot)
        return None if layer is None else (layer.x, layer.y, layer.width, layer.height)

    def _place(self) -> None:
        m, order = self.margin, []
        for corner in CORNERS:
            top, left = corner.startswith("top"), corner.endswith("left")
            offset = m
            for slot in STACK_ORDER:
                layer, image = self._layers.get(slot), self._images.get(slot)
                if layer is None or image is None or self.corners.get(slot) != corner:
                    continue
                x = m if left else self.width - m - image.width
                y = offset if top else self.height - offset - image.height
                layer.place(x, y)
                offset += image.height + m // 2
                order.append(layer)
        caption, image = self._layers.get(CAPTION), self._images.get(CAPTION)
        if caption is not None and image is not None:
            caption.place((self.width - image.width) // 2, self.height - m - image.height)
            order.append(caption)
        self._order = order

    # -- per frame (the presenter) ----------------------------------------------------------
    def compose(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with the overlays on it: a copy when there are any (the frame given may
        be the face's cached idle frame, or still be queued at a sink), else ``frame``."""
        if not self._order:
            return frame
        started = time.perf_counter()
        out = frame.copy()
        for layer in self._order:
            layer.blend_into(out)
        self.recent_seconds.append(time.perf_counter() - started)
        return out
