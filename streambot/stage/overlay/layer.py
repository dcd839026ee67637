"""A pre-rendered overlay: an RGBA image at a place in the frame, blended only over its box.

Blending runs on the presenter's clock for every frame, so a layer keeps what the blend needs
precomputed in 16-bit integers: ``255 - alpha`` and ``colour * alpha + 127``. Then one frame's
box is ``(dst * (255 - a) + colour * a + 127) // 255``: the blend rounded to nearest (255 is
odd, so there are no ties), at most 65,152, so uint16 holds it; written back. No float math,
no allocation per frame (the work buffer belongs to the layer), and four NumPy calls: each
call lets go of the GIL and may wait a whole switch interval to get it back while a worker
thread runs Python (clock.responsive_clock), so fewer calls is fewer such waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(eq=False)
class Layer:
    x: int
    y: int
    inverse_alpha: np.ndarray  # (h, w, 1) uint16: 255 - alpha
    premultiplied: np.ndarray  # (h, w, 3) uint16: rgb * alpha + 127
    rgba: np.ndarray = field(repr=False)  # (h, w, 4) uint8, as drawn (for tests and tools)
    dx: int = 0  # where the visible pixels start inside the image drawn (its crop)
    dy: int = 0
    _work: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._work = np.empty(self.premultiplied.shape, np.uint16)

    @classmethod
    def from_image(cls, image: Image.Image, x: int, y: int) -> Layer | None:
        """``image`` placed with its top-left corner at (x, y), cropped to what is visible
        (fully transparent margins cost nothing); None when nothing is visible."""
        rgba = image.convert("RGBA")
        box = rgba.getchannel("A").getbbox()
        if box is None:
            return None
        rgba = rgba.crop(box)
        pixels = np.asarray(rgba, np.uint8)
        alpha = pixels[..., 3:4].astype(np.uint16)
        premultiplied = pixels[..., :3].astype(np.uint16) * alpha + 127
        return cls(x + box[0], y + box[1], 255 - alpha, premultiplied, pixels, box[0], box[1])

    def place(self, x: int, y: int) -> None:
        """Put the image this layer was drawn from with its top-left corner at (x, y)."""
        self.x, self.y = x + self.dx, y + self.dy

    @property
    def width(self) -> int:
        return self.premultiplied.shape[1]

    @property
    def height(self) -> int:
        return self.premultiplied.shape[0]

    def blend_into(self, frame: np.ndarray) -> None:
        """Blend over ``frame`` (H x W x 3 uint8) in place, clipped to the frame."""
        height, width = frame.shape[:2]
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.width, width), min(self.y + self.height, height)
        if x0 >= x1 or y0 >= y1:
            return
        rows = slice(y0 - self.y, y1 - self.y)
        cols = slice(x0 - self.x, x1 - self.x)
        box = frame[y0:y1, x0:x1]
        work = self._work[rows, cols]
        np.multiply(box, self.inverse_alpha[rows, cols], out=work)
        np.add(work, self.premultiplied[rows, cols], out=work)
        np.floor_divide(work, 255, out=work)
        np.copyto(box, work, casting="unsafe")


def blend_reference(frame: np.ndarray, layer: Layer) -> np.ndarray:
    """The same blend in floating point, rounded: what ``blend_into`` must equal (tests)."""
    out = frame.astype(np.float64).copy()
    h, w = layer.height, layer.width
    region = out[layer.y : layer.y + h, layer.x : layer.x + w]
    alpha = layer.rgba[..., 3:4].astype(np.float64)
    region[:] = (region * (255 - alpha) + layer.rgba[..., :3] * alpha) / 255
    return np.floor(out + 0.5).astype(np.uint8)
