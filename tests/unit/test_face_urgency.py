"""The urgency a shared face server sees: a viewer's answer renders at Triton's first priority
level, a pitch or the warm-up at the second; the level reaches the render thread the engine
runs on."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streambot.clock import VirtualClock
from streambot.events import ChatMessage, Sentence, Speech
from streambot.runtime.base import Urgency, request_urgency
from streambot.stage.face_driver import FaceDriver
from streambot.stage.presenter import Presenter
from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.turn import Turn, TurnKind

FPS, H, W, FRAMES = 25, 8, 8, 3


class UrgencyFace:
    """Renders black frames, noting the urgency its engine call saw on its worker thread."""

    width, height = W, H

    def __init__(self) -> None:
        self.seen: list[Urgency] = []

    def idle(self, index: int) -> np.ndarray:
        return np.zeros((H, W, 3), np.uint8)

    def reset(self) -> None:
        pass

    async def render(self, pcm16k, start_index, visemes=None):
        self.seen.append(await asyncio.to_thread(request_urgency.get))  # as an engine would
        yield np.zeros((pcm16k.size // 640, H, W, 3), np.uint8)


class NullSink:
    name, live = "null", False

    def open(self, fmt):
        pass

    def write(self, index, frame, pcm):
        pass

    def close(self):
        pass


def speech(turn_id: int) -> Speech:
    sentence = Sentence(turn_id, 0, "Hi.", "en")
    pcm48k = np.zeros(FRAMES * 1920, np.float32)
    return Speech(turn_id, sentence, pcm48k, np.zeros(FRAMES * 640, np.float32), FRAMES)


async def speeches(turn_id: int):
    yield speech(turn_id)


@pytest.mark.parametrize(
    ("kind", "urgency"),
    [
        (TurnKind.ANSWER, Urgency.NOW),
        (TurnKind.THANKS, Urgency.NOW),
        (TurnKind.SAY, Urgency.NOW),
        (TurnKind.PITCH, Urgency.IDLE),
        (TurnKind.SCRIPT, Urgency.IDLE),
    ],
)
async def test_a_turns_frames_are_asked_for_at_its_urgency(kind, urgency):
    clock, face = VirtualClock(), UrgencyFace()
    fanout = SinkFanout([NullSink()], StreamFormat(W, H, FPS, 48_000))
    driver = FaceDriver(face, Presenter(face, fanout, clock, FPS), clock)
    await driver.calibrate()  # the warm-up waits behind every room's turns
    await driver.show(Turn(1, kind, ChatMessage("t", "viewer", "how much?")), speeches(1))
    assert face.seen == [Urgency.IDLE, Urgency.IDLE, urgency]
    assert request_urgency.get() == Urgency.IDLE  # nothing leaks past the turn
