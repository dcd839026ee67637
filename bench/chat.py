"""Bilibili chat ingest benchmark: decoder + normaliser + triage on one core, and memory under a
flood.

1. Throughput: brotli-packed frames of realistic DANMU_MSG bursts are built in memory, then
   decoded, normalised to ChatMessages and passed through ``Triage(TriageConfig()).decide``;
   the goal is >= 20,000 msg/s.
2. Flood: a simulated 60 s of 1,000 msg/s from many distinct users (more than triage tracks)
   goes through decoder + triage + ``Inbox(32)``, in accelerated time (a virtual ``now``), with
   the host taking one message every few seconds; Python heap (tracemalloc) and RSS are sampled
   to show memory stays bounded.

    python bench/chat.py                      # defaults: 60,000 messages, a 60 s flood
    python bench/chat.py --messages 200000 --flood-seconds 120 --rate 2000
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import brotli

from streambot.chat.bilibili_commands import (
    packet_to_message,
)
from streambot.chat.bilibili_packets import (
    OP_COMMAND,
    Packet,
    PacketDecoder,
    encode_packet,
)
from streambot.config import TriageConfig
from streambot.inbox import Inbox
from streambot.triage import Triage

TEXTS = [
    "主播好！",
    "这个保温杯多少钱？",
    "哈哈哈哈哈哈",
    "耳机几天发货？",
    "6666666",
    "有没有优惠券",
    "How much is the coffee grinder?",
    "hello from Shanghai",
    "主播今天播多久",
    "上链接上链接",
    "is the lamp in stock?",
    "来了来了",
    "这个颜色好看吗",
    "lol",
    "请问能开发票吗？",
    "晚上好",
]


def danmu(text: str, uid: int, uname: str) -> dict:
    head = [
        0,
        1,
        25,
        16777215,
        1718000000000,
        1718000000,
        0,
        "a1b2c3d4",
        0,
        0,
        0,
        "",
        0,
        "{}",
        "{}",
        {
            "mode": 0,
            "extra": "{}",
            "user": {
                "uid": uid,
                "base": {
                    "name": uname,
                    "face": "https://i0.hdslb.com/bfs/face/member/noface.jpg",
                    "is_mystery": False,
                },
            },
        },
        {"activity_identity": "", "activity_source": 0, "not_show": 0},
        0,
    ]
    return {
        "cmd": "DANMU_MSG",
        "dm_v2": "",
        "info": [
            head,
            text,
            [uid, uname, 0, 0, 0, 10000, 1, ""],
            [5, "粉丝团", "主播", 7734200, 6067854, "", 0],
            [10, 0, 9868950, ">50000", 0],
            ["", ""],
            0,
            0,
            None,
            {"ts": 1718000000, "ct": "ABCDEF"},
            0,
            0,
            None,
            None,
            0,
            105,
        ],
    }


def burst(rng: random.Random, first_user: int, size: int, users: int) -> bytes:
    packets = []
    for i in range(size):
        uid = (first_user + i) % users + 1
        text = rng.choice(TEXTS)
        packets.append(encode_packet(OP_COMMAND, danmu(text, uid, f"观众{uid}")))
    return encode_packet(OP_COMMAND, brotli.compress(b"".join(packets), quality=5), ver=3, seq=0)


def ingest(decoder: PacketDecoder, frame: bytes):
    for item in decoder.decode(frame):
        if isinstance(item, Packet) and item.op == OP_COMMAND:
            msg = packet_to_message(item)
            if msg is not None:
                yield msg


def throughput(messages: int, burst_size: int, seed: int, repeat: int) -> dict:
    rng = random.Random(seed)
    frames = [
        burst(rng, i * burst_size, burst_size, users=5_000) for i in range(messages // burst_size)
    ]
    total = len(frames) * burst_size
    decode_rates, full_rates = [], []
    for _ in range(repeat):
        decoder = PacketDecoder()
        t0 = time.perf_counter()
        decoded = sum(1 for frame in frames for _ in ingest(decoder, frame))
        decode_rates.append(total / (time.perf_counter() - t0))
        assert decoded == total and decoder.errors == 0

        decoder, triage = PacketDecoder(), Triage(TriageConfig())
        accepted, now = 0, 0.0
        t0 = time.perf_counter()
        for frame in frames:
            now += burst_size / 1000.0  # stream time advances as at 1,000 msg/s
            for msg in ingest(decoder, frame):
                accepted += triage.decide(msg, now).accepted
        full_rates.append(total / (time.perf_counter() - t0))
    return {
        "messages": total,
        "frame_bytes": sum(map(len, frames)) / len(frames),
        "decode": (statistics.median(decode_rates), max(decode_rates)),
        "full": (statistics.median(full_rates), max(full_rates)),
        "accepted": accepted,
    }


def rss_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def flood(seconds: int, rate: int, users: int, take_every_s: float, seed: int) -> dict:
    rng = random.Random(seed)
    decoder, triage, inbox = PacketDecoder(), Triage(TriageConfig()), Inbox(32)
    tick = 0.1
    per_tick = max(1, int(rate * tick))
    counts = {"messages": 0, "accepted": 0, "queued": 0, "refused_by_inbox": 0, "answered": 0}
    samples: list[tuple[int, float, float, int]] = []
    gc.collect()
    tracemalloc.start()
    base_heap = tracemalloc.get_traced_memory()[0]
    next_take, next_sample, user = take_every_s, 1.0, 0
    t0 = time.perf_counter()
    for step in range(1, int(seconds / tick) + 1):
        now = step * tick
        frame = burst(rng, user, per_tick, users)
        user += per_tick
        for msg in ingest(decoder, frame):
            counts["messages"] += 1
            decision = triage.decide(msg, now)
            if decision.accepted:
                counts["accepted"] += 1
                if inbox.put(msg, decision.priority) is msg:
                    counts["refused_by_inbox"] += 1
                else:
                    counts["queued"] += 1
        while now >= next_take:  # the host answers one message every take_every_s
            counts["answered"] += inbox.get_nowait() is not None
            next_take += take_every_s
        if now >= next_sample - 1e-9:
            heap, peak = tracemalloc.get_traced_memory()
            samples.append((round(now), (heap - base_heap) / 2**20, peak / 2**20, rss_kib()))
            next_sample += max(1.0, seconds / 6)
    wall = time.perf_counter() - t0
    tracemalloc.stop()
    return {
        **counts,
        "wall_s": wall,
        "samples": samples,
        "inbox_len": len(inbox),
        "tracked_users": len(triage._user_times),
        "decode_errors": decoder.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--burst", type=int, default=20, help="DANMU_MSG packets per frame")
    parser.add_argument("--flood-seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1_000, help="flood messages per second")
    parser.add_argument("--users", type=int, default=50_000, help="distinct users in the flood")
    parser.add_argument("--take-every", type=float, default=5.0, help="host answer interval, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs")
    args = parser.parse_args()

    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"python {platform.python_version()}, brotli {brotli.__version__}, "
        f"{platform.machine()} {platform.processor() or ''}".rstrip()
    )

    tp = throughput(args.messages, args.burst, args.seed, args.repeat)
    print(f"\nthroughput (one core, brotli frames of DANMU_MSG bursts, {args.repeat} runs)")
    print(f"| {'stage':<38} | {'median msg/s':>12} | {'best msg/s':>10} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 12}|")
    for label, key in (
        ("decode + normalise", "decode"),
        ("decode + normalise + triage.decide", "full"),
    ):
        median, best = tp[key]
        print(f"| {label:<38} | {median:>12,.0f} | {best:>10,.0f} |")
    goal = "met" if tp["full"][0] >= 20_000 else "NOT met"
    print(
        f"{tp['messages']:,} messages, {args.burst} per frame, "
        f"{tp['frame_bytes']:.0f} bytes per frame on average, {tp['accepted']:,} accepted; "
        f"goal >= 20,000 msg/s (median): {goal}"
    )

    fl = flood(args.flood_seconds, args.rate, args.users, args.take_every, args.seed)
    print(
        f"\nflood: {args.flood_seconds} s x {args.rate:,} msg/s from {args.users:,} users "
        f"(virtual time, {fl['wall_s']:.1f} s wall with tracemalloc on)"
    )
    print(f"| {'stream s':>8} | {'heap growth MiB':>15} | {'heap peak MiB':>13} | {'RSS MiB':>8} |")
    print(f"|{'-' * 10}|{'-' * 17}|{'-' * 15}|{'-' * 10}|")
    for at, heap, peak, rss in fl["samples"]:
        print(f"| {at:>8} | {heap:>15.2f} | {peak:>13.2f} | {rss / 1024:>8.1f} |")
    print(
        f"{fl['messages']:,} messages, {fl['accepted']:,} accepted by triage, "
        f"{fl['queued']:,} queued, {fl['refused_by_inbox']:,} refused by the full inbox, "
        f"{fl['answered']} answered; inbox holds {fl['inbox_len']} (max 32), triage tracks "
        f"{fl['tracked_users']:,} users (cap {TriageConfig().max_users_tracked:,}), "
        f"{fl['decode_errors']} decode errors"
    )


if __name__ == "__main__":
    main()
