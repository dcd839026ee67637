"""Virtual camera through pyvirtualcam (v4l2loopback on Linux, OBS's camera on Windows/macOS).

Video only: the voice goes to an audio device sink beside it. Without a camera device this
raises SinkUnavailable with the command that creates one; the daemon goes on without it.
"""

from __future__ import annotations

import sys

import numpy as np

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat

LINUX_HINT = (
    "no v4l2loopback device found. Load the kernel module, then restart streambot:\n"
    "    sudo apt install v4l2loopback-dkms   # once\n"
    "    sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=streambot\n"
    "and pick the 'streambot' camera in OBS (Video Capture Device)."
)


class VirtualCamSink:
    name = "virtualcam"
    live = True
    picture_only = True  # held back by the sound card's delay when an audio sink plays the voice

    def __init__(self, device: str = "") -> None:
        self._device = device or None
        self._camera = None

    def open(self, fmt: StreamFormat) -> None:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise SinkUnavailable(
                "virtual camera needs pyvirtualcam: pip install pyvirtualcam"
            ) from exc
        try:
            self._camera = pyvirtualcam.Camera(
                width=fmt.width,
                height=fmt.height,
                fps=fmt.fps,
                fmt=pyvirtualcam.PixelFormat.RGB,
                device=self._device,
            )
        except RuntimeError as exc:
            hint = (
                LINUX_HINT
                if sys.platform.startswith("linux")
                else ("start OBS once and click 'Start Virtual Camera' to install its camera")
            )
            raise SinkUnavailable(f"virtual camera unavailable ({exc}); {hint}") from exc

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        if self._camera is None:
            raise SinkUnavailable("the virtual camera is not open")
        self._camera.send(frame)

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
