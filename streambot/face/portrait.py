"""The bundled default avatar: a portrait drawn here with Pillow (no third-party image).

Everything is drawn at twice the output size and downsampled once, for smooth edges. Besides
the base image, the portrait provides the regions the mouth renderer animates (mouth, eyes) and
sprites for each mouth opening and eye state, pre-rendered so a frame is a few array copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIN = (241, 200, 170)
SKIN_SHADE = (222, 172, 142)
HAIR = (58, 38, 32)
LIP = (196, 92, 98)
MOUTH_INSIDE = (92, 28, 38)
TEETH = (250, 246, 240)
TONGUE = (205, 100, 110)
EYE_WHITE = (252, 252, 252)
IRIS = (74, 112, 160)
TOP = (44, 98, 138)


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


@dataclass
class Portrait:
    base: np.ndarray  # (H, W, 3) uint8, mouth closed, eyes open
    mouth_box: Box
    eye_box: Box  # one box spanning both eyes
    mouth_sprites: dict[str, list[np.ndarray]]  # per shape: index 0 = closed ... -1 = widest
    eye_sprites: dict[str, np.ndarray]  # "open", "half", "closed"


def _background(w: int, h: int) -> Image.Image:
    top = np.array([232, 222, 246], np.float32)
    bottom = np.array([180, 196, 232], np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    grad = (top * (1 - t) + bottom * t).repeat(w, axis=1)
    img = Image.fromarray(grad.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    # a soft shelf and a plant silhouette, so the frame reads as a studio
    draw.rectangle([0, int(h * 0.78), w, h], fill=(150, 128, 110))
    for i in range(5):
        cx = int(w * 0.14) + i * int(w * 0.012)
        draw.ellipse(
            [cx - 40, int(h * 0.52) - i * 30, cx + 40, int(h * 0.62) - i * 30], fill=(88, 140, 96)
        )
    draw.rectangle([int(w * 0.12), int(h * 0.62), int(w * 0.2), int(h * 0.78)], fill=(196, 120, 80))
    return img


# Mouth shapes: (half width at rest as a share of the box, width lost when fully open,
# how far the opening goes as a share of the box height, teeth shown as a share of the gap).
MOUTH_SHAPES = {
    "neutral": (0.36, 0.05, 0.42, 0.55),
    "round": (0.22, 0.02, 0.40, 0.25),
    "spread": (0.42, 0.02, 0.24, 0.75),
}


def _mouth_sprite(
    size: tuple[int, int], skin_patch: Image.Image, openness: float, shape: str = "neutral"
) -> np.ndarray:
    """Lips around an opening ``openness`` (0..1) of the given shape, on the skin patch."""
    w, h = size
    rest_w, narrowing, reach, teeth = MOUTH_SHAPES[shape]
    img = skin_patch.copy()
    d = ImageDraw.Draw(img)
    cx, cy = w / 2, h / 2
    half_w = w * (rest_w - narrowing * openness)
    gap = 3 + openness * h * reach
    lip = 10 if shape != "round" else 14
    d.ellipse([cx - half_w, cy - gap / 2 - lip, cx + half_w, cy + gap / 2 + lip + 2], fill=LIP)
    if openness < 0.05:
        d.line([cx - half_w * 0.9, cy, cx + half_w * 0.9, cy], fill=MOUTH_INSIDE, width=5)
    else:
        inner = [cx - half_w * 0.78, cy - gap / 2, cx + half_w * 0.78, cy + gap / 2]
        d.ellipse(inner, fill=MOUTH_INSIDE)
        inset = min(6.0, (inner[2] - inner[0]) / 4)  # small portraits have small mouths
        d.chord(
            [inner[0] + inset, inner[1], inner[2] - inset, inner[1] + gap * teeth],
            180,
            360,
            fill=TEETH,
        )
        if openness > 0.35 and shape != "spread":
            d.ellipse(
                [cx - half_w * 0.45, cy + gap * 0.1, cx + half_w * 0.45, cy + gap / 2], fill=TONGUE
            )
    return np.asarray(img)


def _eye_sprite(
    size: tuple[int, int],
    skin_patch: Image.Image,
    state: str,
    eye_centres: list[tuple[float, float]],
    eye_r: float,
) -> np.ndarray:
    img = skin_patch.copy()
    d = ImageDraw.Draw(img)
    for ex, ey in eye_centres:
        if state == "closed":
            d.arc(
                [ex - eye_r, ey - eye_r * 0.6, ex + eye_r, ey + eye_r * 0.6],
                10,
                170,
                fill=HAIR,
                width=6,
            )
            continue
        squash = 1.0 if state == "open" else 0.45
        d.ellipse(
            [ex - eye_r, ey - eye_r * 0.72 * squash, ex + eye_r, ey + eye_r * 0.72 * squash],
            fill=EYE_WHITE,
            outline=HAIR,
            width=5,
        )
        ir = eye_r * 0.52
        d.ellipse([ex - ir, ey - ir * squash, ex + ir, ey + ir * squash], fill=IRIS)
        pr = ir * 0.5
        d.ellipse([ex - pr, ey - pr * squash, ex + pr, ey + pr * squash], fill=(20, 20, 28))
        if state == "open":
            d.ellipse(
                [ex - pr * 0.2, ey - pr * 1.1, ex + pr * 0.6, ey - pr * 0.3], fill=(255, 255, 255)
            )
    return np.asarray(img)


@dataclass(frozen=True)
class _Head:
    """Where ``_draw_head`` put the head and the eyes (supersampled pixels)."""

    cx: float
    top: float
    w: float
    h: float
    eye_y: float
    eye_dx: float
    eye_r: float


def _draw_features(
    d: ImageDraw.ImageDraw, cx: float, head_top: float, head_w: float, head_h: float
) -> tuple[float, float, float]:
    """Eyebrows, nose and cheeks; the eyes' height, their distance from the middle and their
    radius (the eye sprites are drawn there)."""
    eye_y = head_top + head_h * 0.47
    eye_dx = head_w * 0.2
    eye_r = head_w * 0.085
    for side in (-1, 1):
        ex = cx + side * eye_dx
        d.arc(
            [ex - eye_r * 1.3, eye_y - eye_r * 2.4, ex + eye_r * 1.3, eye_y - eye_r * 0.6],
            200,
            340,
            fill=HAIR,
            width=7,
        )
        d.ellipse(
            [ex - eye_r * 1.1, eye_y + eye_r * 1.4, ex + eye_r * 1.1, eye_y + eye_r * 2.2],
            fill=(244, 176, 168),
        )
    d.arc(
        [cx - eye_r * 0.5, eye_y + eye_r * 0.8, cx + eye_r * 0.5, eye_y + eye_r * 2.1],
        20,
        160,
        fill=SKIN_SHADE,
        width=6,
    )
    return eye_y, eye_dx, eye_r


def _draw_head(W: int, H: int) -> tuple[Image.Image, _Head]:
    """The supersampled picture (background, shoulders, head, hair, brows, nose, cheeks; no
    eyes or mouth, the sprites draw those) and where its features are."""
    img = _background(W, H)
    d = ImageDraw.Draw(img)
    cx = W / 2
    head_w, head_h = H * 0.30, H * 0.40
    head_top = H * 0.16
    # hair behind the head, shoulders, neck, head
    d.ellipse(
        [cx - head_w * 0.72, head_top - H * 0.04, cx + head_w * 0.72, head_top + head_h * 1.25],
        fill=HAIR,
    )
    d.rounded_rectangle(
        [cx - H * 0.42, H * 0.74, cx + H * 0.42, H * 1.2], radius=int(H * 0.18), fill=TOP
    )
    d.rectangle(
        [cx - head_w * 0.2, head_top + head_h * 0.8, cx + head_w * 0.2, H * 0.8], fill=SKIN_SHADE
    )
    d.polygon(
        [(cx - H * 0.12, H * 0.745), (cx, H * 0.84), (cx + H * 0.12, H * 0.745)], fill=SKIN_SHADE
    )
    d.ellipse([cx - head_w / 2, head_top, cx + head_w / 2, head_top + head_h], fill=SKIN)
    # ears
    for side in (-1, 1):
        ex = cx + side * head_w * 0.5
        d.ellipse(
            [ex - H * 0.025, head_top + head_h * 0.42, ex + H * 0.025, head_top + head_h * 0.6],
            fill=SKIN_SHADE,
        )
    # fringe
    d.chord(
        [cx - head_w * 0.56, head_top - head_h * 0.12, cx + head_w * 0.56, head_top + head_h * 0.5],
        180,
        360,
        fill=HAIR,
    )
    d.pieslice(
        [cx - head_w * 0.1, head_top - head_h * 0.05, cx + head_w * 0.62, head_top + head_h * 0.42],
        180,
        300,
        fill=HAIR,
    )
    eye_y, eye_dx, eye_r = _draw_features(d, cx, head_top, head_w, head_h)
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    return img, _Head(cx, head_top, head_w, head_h, eye_y, eye_dx, eye_r)


def draw_portrait(width: int, height: int, mouth_levels: int = 12) -> Portrait:
    s = 2  # supersampling factor
    img, head = _draw_head(width * s, height * s)
    cx, head_top, head_w, head_h = head.cx, head.top, head.w, head.h
    eye_y, eye_dx, eye_r = head.eye_y, head.eye_dx, head.eye_r

    mouth_y = head_top + head_h * 0.77
    mouth = Box(
        int(cx - head_w * 0.2), int(mouth_y - head_h * 0.1), int(head_w * 0.4), int(head_h * 0.2)
    )
    eyes = Box(
        int(cx - eye_dx - eye_r * 1.6),
        int(eye_y - eye_r * 1.2),
        int(2 * eye_dx + eye_r * 3.2),
        int(eye_r * 2.4),
    )

    def crop(box: Box) -> Image.Image:
        return img.crop((box.x, box.y, box.x + box.w, box.y + box.h))

    mouth_patch, eye_patch = crop(mouth), crop(eyes)
    centres = [(eyes.w / 2 - eye_dx, eyes.h / 2), (eyes.w / 2 + eye_dx, eyes.h / 2)]

    def down(arr: np.ndarray, box: Box) -> np.ndarray:
        small = Image.fromarray(arr).resize((box.w // s, box.h // s), Image.Resampling.LANCZOS)
        return np.ascontiguousarray(np.asarray(small))

    def scaled(box: Box) -> Box:
        return Box(box.x // s, box.y // s, box.w // s, box.h // s)

    mouth_s, eyes_s = scaled(mouth), scaled(eyes)
    mouth_sprites = {
        shape: [
            down(
                _mouth_sprite((mouth.w, mouth.h), mouth_patch, i / (mouth_levels - 1), shape), mouth
            )
            for i in range(mouth_levels)
        ]
        for shape in MOUTH_SHAPES
    }
    eye_sprites = {
        state: down(_eye_sprite((eyes.w, eyes.h), eye_patch, state, centres, eye_r), eyes)
        for state in ("open", "half", "closed")
    }
    base = np.array(img.resize((width, height), Image.Resampling.LANCZOS))
    base[mouth_s.slices()] = mouth_sprites["neutral"][0]
    base[eyes_s.slices()] = eye_sprites["open"]
    return Portrait(base, mouth_s, eyes_s, mouth_sprites, eye_sprites)
