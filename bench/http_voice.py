"""Time to first audio through the TTS-server voice, and what the client itself adds.

A loopback OpenAI-compatible speech server (tests/tts_double.py, the test suite's) answers
each request at once with streamed 16-bit PCM; the server notes when the request arrived and
when it wrote its first chunk. Client overhead = (first piece in the host's hands - call) -
(first chunk written - request arrived): the JSON, the HTTP round trip on loopback, decoding
and the piece hand-over. Also the same with the response sent whole (Content-Length) and as a
WAV stream, and the local espeak-ng voice's first audio for comparison.

    python bench/http_voice.py --repeats 50
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.tts_double

from streambot.config import EspeakVoiceConfig
from streambot.voice.espeak import EspeakVoice
from streambot.voice.http_speech import HttpSpeechVoice
from tests.tts_double import SpeechServer

SENTENCE = "The AeroBrew grinder is $89.99 and ships free in 2-3 days."


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def first_audio(voice, server: SpeechServer | None, repeats: int) -> tuple[list, list]:
    totals, overheads = [], []
    for _ in range(repeats + 3):  # three warm-ups (the connection pool, first-call costs)
        began = time.perf_counter()
        stream = voice.speak_pieces(SENTENCE, "en") if hasattr(voice, "speak_pieces") else None
        if stream is not None:
            await anext(stream)
        else:
            await anext(voice.speak(SENTENCE, "en"))
        total = time.perf_counter() - began
        if stream is not None:
            async for _ in stream:
                pass
        totals.append(total)
        if server is not None:
            overheads.append(total - (server.first_chunk_at[-1] - server.received_at[-1]))
    return totals[3:], overheads[3:]


async def run(repeats: int) -> list[tuple[str, list, list]]:
    rows = []
    espeak = EspeakVoice(EspeakVoiceConfig())
    for name, mode, fmt in (
        ("streamed PCM", "stream", "pcm"),
        ("whole PCM", "whole", "pcm"),
        ("streamed WAV", "stream", "wav"),
    ):
        server = SpeechServer(seconds=4.0, mode=mode)
        await server.start()
        voice = HttpSpeechVoice(
            server.base_url, "tts-1", "alloy", None, espeak, response_format=fmt
        )
        totals, overheads = await first_audio(voice, server, repeats)
        assert voice.fallbacks == 0
        rows.append((name, totals, overheads))
        await voice.close()
        await server.stop()
    totals, _ = await first_audio(espeak, None, repeats)
    rows.append(("espeak-ng (local, for comparison)", totals, []))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    rows = asyncio.run(run(args.repeats))
    print(f"# bench/http_voice.py --repeats {args.repeats}")
    print(
        f"# {platform.processor() or platform.machine()}, python {sys.version.split()[0]}; "
        "4 s of audio per request, loopback server answering at once"
    )
    print("| response | first audio median ms | p95 ms | client overhead median ms | p95 ms |")
    print("|---|---|---|---|---|")
    for name, totals, overheads in rows:
        over = (
            f"{statistics.median(overheads) * 1e3:.2f} | {p(overheads, 0.95) * 1e3:.2f}"
            if overheads
            else "- | -"
        )
        print(
            f"| {name} | {statistics.median(totals) * 1e3:.2f} | {p(totals, 0.95) * 1e3:.2f} "
            f"| {over} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
