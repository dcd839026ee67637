"""Dataclasses that flow between the pipeline's stages (docs/ARCHITECTURE.md, "Data flow")."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np


class Priority(IntEnum):
    """Higher answers first. Values are stored, so keep them stable."""

    CHAT = 10
    QUESTION = 20
    THANKS = 25  # thanks for paid gifts, memberships and raids (batched)
    PAID = 30  # super chat and the like: may interrupt the current turn
    COHOST = 35  # the co-host talking to the host over the microphone
    OPERATOR = 40  # operator commands from a trusted source


class Kind:
    CHAT = "chat"
    SUPERCHAT = "superchat"  # a paid message (Bilibili super chat, Twitch Hype Chat)
    COMMAND = "command"
    GIFT = "gift"  # a paid gift (Bilibili SEND_GIFT), thanked, in batches when they burst
    MEMBERSHIP = "membership"  # a paid membership: Bilibili GUARD_BUY, Twitch sub/resub/gift sub
    CHEER = "cheer"  # Twitch bits
    RAID = "raid"  # Twitch raid
    INTERACTION = "interaction"  # Bilibili INTERACT_WORD: entered the room, followed, shared
    VOICE = "voice"  # transcribed from the co-host's microphone


@dataclass
class ChatMessage:
    source: str
    user: str
    text: str
    kind: str = Kind.CHAT
    received_at: float = field(default_factory=time.time)  # wall clock, for the record
    arrived: float = field(default_factory=time.perf_counter)  # monotonic, for latency
    malformed: str | None = None  # set by a source that could not parse what it received
    id: int | None = None  # store row id, set when the message is logged
    amount: float | None = None  # money paid, in ``currency`` (super chats, gifts, bits)
    currency: str = ""  # ISO code ("CNY", "USD"); bits are counted as "BITS"
    count: int = 1  # how many (gifts in one event, gifted subs, raiders)
    user_id: str = ""  # the platform's stable id of the user, when it has one
    meta: dict = field(default_factory=dict)  # platform details (gift name, badges, ...)
    # The name the host may say aloud, set by triage (None: it failed the name rules, so the
    # host says "friend"). Nothing spoken ever uses ``user`` directly.
    spoken_name: str | None = None
    # Set by a source that acknowledges a message only once it is stored (HTTP's 202): the
    # pump resolves it with the stored Decision, or an exception when the message was lost.
    receipt: asyncio.Future | None = field(default=None, repr=False, compare=False)

    @property
    def stored_id(self) -> int:
        """The store's row id: what ingest decides about and turns answer is stored first."""
        if self.id is None:
            raise RuntimeError(f"a message from {self.source} was used before it was stored")
        return self.id


class MessageStatus(StrEnum):
    """Where a chat message stands. The values are stored and shown, so keep them stable."""

    RECEIVED = "received"  # stored, not decided yet
    ACCEPTED = "accepted"  # waiting to be answered (again, after a restart or interruption)
    REJECTED = "rejected"  # refused by triage or the command parser
    DROPPED = "dropped"  # accepted, then dropped: the queue was full, or the operator said so
    BATCHED = "batched"  # a gift held for a batched thanks
    ANSWERING = "answering"  # its turn is being said
    ANSWERED = "answered"  # its reply was played in full
    FAILED = "failed"  # its turn failed
    INTERRUPTED = "interrupted"  # its turn was cut short by something more important
    INTERRUPTED_BY_SHUTDOWN = "interrupted-by-shutdown"  # the daemon stopped during its turn
    SKIPPED = "skipped"  # the operator skipped it
    UNANSWERED = "unanswered"  # left unanswered (stale, or its turn could not be made)
    SUPERSEDED = "superseded"  # a newer message from the same viewer replaced it
    EXPIRED = "expired"  # low-priority chat not resumed after a restart


# Accepted but not yet fully answered: these survive a restart and are never pruned.
# (INTERRUPTED: rows of versions that never answered an interrupted question again.)
PENDING = frozenset(
    {
        MessageStatus.ACCEPTED,
        MessageStatus.ANSWERING,
        MessageStatus.INTERRUPTED_BY_SHUTDOWN,
        MessageStatus.INTERRUPTED,
    }
)


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str
    priority: int = Priority.CHAT
    batch: bool = False  # held for a batched thanks instead of queued on its own


@dataclass(frozen=True)
class Sentence:
    turn_id: int
    index: int
    text: str
    lang: str


@dataclass(frozen=True)
class Speech:
    """One sentence of audio (or a piece of one, from a streaming voice), in whole frames:
    len(pcm48k) == frames * samples_per_frame."""

    turn_id: int
    sentence: Sentence
    pcm48k: np.ndarray  # float32 mono
    pcm16k: np.ndarray  # float32 mono, exactly a third as long
    frames: int
    visemes: tuple[str, ...] | None = None  # one mouth shape per frame, when the voice knows
    continues: bool = False  # more of the same sentence follows straight on (a streamed piece)


@dataclass(frozen=True)
class Clip:
    """A few frames of one turn plus exactly their audio (frames.shape[0] * 1920 samples)."""

    turn_id: int
    frames: np.ndarray  # (B, H, W, 3) uint8 RGB
    pcm: np.ndarray  # (B * samples_per_frame,) float32
    sentence_index: int
    # The frame index its first frame is shown at (Presenter.schedule), rendered for exactly
    # that index; None: as soon as the presenter gets to it.
    index: int | None = None
    last: bool = False  # the last clip of its speech: a wait after it is a pause, not a gap


@dataclass(frozen=True)
class TurnEnd:
    """Marks the end of a turn's clips in the presenter queue."""

    turn_id: int
