"""Typed configuration: pydantic models for every section of ``config.toml``.

Every model forbids unknown keys, so a typo is reported by name instead of silently ignored.
Secrets never live in the file: the config names an environment variable, and the value is read
from the environment as a ``SecretStr`` (its repr is masked) and registered with the log redactor.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from streambot.logs import register_secret
from streambot.timing import DEFAULT_FPS, FACE_RATE, OUTPUT_RATE, samples_per_frame

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration problem; the message names the key and what is wrong with it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def default_avatar_cache() -> Path:
    """Where prepared avatars are cached unless the config says otherwise."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "streambot" / "avatars"


def read_secret(env_name: str) -> SecretStr | None:
    """Read the secret held in environment variable ``env_name``; ``None`` when unset or empty."""
    if not env_name:
        return None
    value = os.environ.get(env_name, "")
    if not value:
        return None
    register_secret(value)
    return SecretStr(value)


def require_token_off_loopback(
    section: str, what: str, host: str, token_env: str, min_chars: int = 0
) -> None:
    """A server bound beyond this computer must need a token of at least ``min_chars``
    characters: ConfigError when none is set, or it is shorter."""
    from streambot.http_guard import is_loopback

    if is_loopback(host):
        return
    token = read_secret(token_env)
    if token is None:
        raise ConfigError(
            f"{section}.host: {host!r} is reachable from other machines, so {what} needs a "
            f"token: set the environment variable {token_env} ({section}.token_env), or bind "
            "to 127.0.0.1"
        )
    if len(token.get_secret_value()) < min_chars:
        raise ConfigError(
            f"{section}.host: {host!r} is reachable from other machines, so the token in "
            f"{token_env} ({section}.token_env) must be at least {min_chars} characters long "
            "(a random one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )


def _allowed_hosts(names: list[str]) -> list[str]:
    from streambot.http_guard import check_host_name

    return [check_host_name(name) for name in names]


# More names a server answers to besides this computer's and the address it is bound to (a
# name that resolves to it on the LAN, e.g. "studio.local"): every other Host is refused.
AllowedHosts = Annotated[list[str], AfterValidator(_allowed_hosts)]


def _whole_output_frames(fps: int) -> int:
    """Each frame must carry a whole number of output samples (1,920 at 25 fps) and of the
    face's 16 kHz samples (640), or audio and video would drift apart."""
    for rate in (OUTPUT_RATE, FACE_RATE):
        if rate % fps:
            fits = [f for f in range(1, 61) if OUTPUT_RATE % f == 0 and FACE_RATE % f == 0]
            raise ValueError(
                f"{fps} fps gives no whole number of {rate} Hz audio samples per frame; "
                f"use one of {', '.join(map(str, fits))}"
            )
    samples_per_frame(fps, OUTPUT_RATE)
    return fps


class StreamConfig(_Section):
    fps: Annotated[int, Field(ge=1, le=60), AfterValidator(_whole_output_frames)] = DEFAULT_FPS
    width: Annotated[int, Field(ge=64, le=3840, multiple_of=2)] = 1280
    height: Annotated[int, Field(ge=64, le=2160, multiple_of=2)] = 720
    realtime: bool = True
    # Output audio rate is fixed by the timing contract (streambot/timing.py).
    sample_rate: Literal[48000] = OUTPUT_RATE
    max_behind_s: Annotated[float, Field(gt=0)] = 0.5


class LocalChatConfig(_Section):
    http: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    token_env: str = "STREAMBOT_CHAT_TOKEN"
    allowed_hosts: AllowedHosts = []
    stdin: bool = False
    replay: str = ""
    replay_loop: bool = False
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 256
    idle_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0

    def token(self) -> SecretStr | None:
        return read_secret(self.token_env)

    def check_exposure(self) -> None:
        """Chat reachable from other machines must need the token: refuse to start without."""
        if self.http:
            require_token_off_loopback("chat.local", "chat", self.host, self.token_env)


class TwitchChatConfig(_Section):
    enabled: bool = False
    bot_user_id: str = ""
    broadcaster_user_id: str = ""
    client_id_env: str = "TWITCH_CLIENT_ID"
    client_secret_env: str = "TWITCH_CLIENT_SECRET"
    access_token_env: str = "TWITCH_ACCESS_TOKEN"
    refresh_token_env: str = "TWITCH_REFRESH_TOKEN"
    reply_in_chat: bool = False
    # Shared Chat: messages sent in another channel of the shared session are kept and
    # counted; "answer" lets the host answer them too.
    shared_chat: Literal["answer", "ignore"] = "ignore"


class BilibiliChatConfig(_Section):
    enabled: bool = False
    mode: Literal["web", "open_platform"] = "web"
    room_id: Annotated[int, Field(ge=0)] = 0
    cookie_env: str = "BILIBILI_COOKIE"
    app_id: Annotated[int, Field(ge=0)] = 0
    access_key_id_env: str = "BILIBILI_ACCESS_KEY_ID"
    access_key_secret_env: str = "BILIBILI_ACCESS_KEY_SECRET"
    identity_code_env: str = "BILIBILI_IDENTITY_CODE"


class MicChatConfig(_Section):
    enabled: bool = False
    model: str = ""
    device: str = ""
    language: str = ""
    user: str = "cohost"


class ChatConfig(_Section):
    local: LocalChatConfig = LocalChatConfig()
    twitch: TwitchChatConfig = TwitchChatConfig()
    bilibili: BilibiliChatConfig = BilibiliChatConfig()
    mic: MicChatConfig = MicChatConfig()


class TriageConfig(_Section):
    max_chars: Annotated[int, Field(ge=1)] = 300
    banned_words: list[str] = ["buy followers", "free followers", "加微信"]
    drop_urls: bool = True
    dedupe_window_s: Annotated[float, Field(ge=0)] = 60.0
    rate_limit_count: Annotated[int, Field(ge=1)] = 3
    rate_limit_window_s: Annotated[float, Field(gt=0)] = 15.0
    max_users_tracked: Annotated[int, Field(ge=16)] = 10_000
    idle_pitch_after_s: Annotated[float, Field(gt=0)] = 20.0


class IngestConfig(_Section):
    """What happens to a message once triage accepted it: the queue, gift batches, what
    interrupts the turn on air, and what a restart answers again."""

    queue_size: Annotated[int, Field(ge=1)] = 32
    gift_window_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    interrupt_priority: Annotated[int, Field(ge=0)] = 30
    resume_min_priority: Annotated[int, Field(ge=0)] = 20


class HostConfig(_Section):
    max_reply_chars: Annotated[int, Field(ge=20)] = 400


class PersonaConfig(_Section):
    """Who the host is, whichever brain and voice speak for it."""

    name: Annotated[str, Field(min_length=1, max_length=40)] = "Mia"


class EnginesConfig(_Section):
    # build_engines.py's output: the pruned LLM, the voice's decoder and the Wav2Lip engines,
    # with the manifest the daemon chooses them by
    dir: str = "engines"


class RetryConfig(_Section):
    """A remote service's retries and circuit breaker: after ``failure_threshold`` failures
    in a row the local fallback takes over for ``open_seconds``."""

    retries: Annotated[int, Field(ge=0, le=10)] = 1
    failure_threshold: Annotated[int, Field(ge=1)] = 3
    open_seconds: Annotated[float, Field(gt=0)] = 30.0


class CatalogBrainConfig(_Section):
    path: str = ""
    token_interval_ms: Annotated[float, Field(ge=0)] = 0.0


class LLMBrainConfig(_Section):
    path: str = ""
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    trust_remote_code: bool = False
    max_new_tokens: Annotated[int, Field(ge=8, le=1024)] = 120
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.9
    memory_turns: Annotated[int, Field(ge=0, le=32)] = 4
    # How the prompt carries the remembered turns ("turns": as chat turns; "summary": one line
    # naming the products discussed; "none") and the catalog's figures ("text"; "slots": the
    # model writes {thermo.price} and the host fills it): brain/prompt.py's PromptStyle.
    memory: Literal["turns", "summary", "none"] = "turns"
    facts: Literal["text", "slots"] = "text"
    # On a CPU the LLM shares the cores with the face and the voice, which have deadlines:
    # its thread runs this many nice steps lower so they get the cores first (0: as they are).
    cpu_nice: Annotated[int, Field(ge=0, le=19)] = 10
    # "auto": the model build_engines.py pruned from ``path`` when it is fresh and passed the
    # build's floor, else ``path`` itself; "pruned": that model or the catalog brain; "none":
    # always ``path``.
    engine: Literal["auto", "pruned", "none"] = "auto"
    # build_engines.py --only llm: the width removed, the least influential layers dropped
    # and the minutes distilled (--prune, --llm-drop-layers and --distil-minutes win), going on
    # past the minutes until the student has had distil_min_steps steps (--distil-min-steps
    # wins): a slow CPU does a third of a fast one's steps in the same minutes, and too few
    # leave it answering greetings with prices. The fastest student the build accepts on the
    # least distillation, measured on the real Qwen2.5-Coder-0.5B (BENCHMARKS.md, the LLM
    # frontier)
    prune: Annotated[float, Field(gt=0, lt=1)] = 0.25
    drop_layers: Annotated[int, Field(ge=0)] = 4
    distil_minutes: Annotated[float, Field(gt=0)] = 10.0
    distil_min_steps: Annotated[int, Field(ge=0)] = 100
    # A question with a factual product answer (price, stock, restock, shipping, a total, a
    # comparison) gets the catalog brain's exact answer at once, and the LLM continues after
    # it (its turn pre-filled with it), guarded; it may add nothing.
    answer_first: bool = True
    # Nothing said first: the model has this long to its first sentence (a script line: to
    # its whole rewording) before the catalog brain answers instead (0: as long as it takes).
    first_sentence_s: Annotated[float, Field(ge=0)] = 8.0


class OpenAIBrainConfig(_Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = "STREAMBOT_LLM_API_KEY"
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_tokens: Annotated[int, Field(ge=8, le=4096)] = 160
    first_token_timeout_s: Annotated[float, Field(gt=0)] = 4.0
    idle_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    total_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    retry: RetryConfig = RetryConfig(retries=2)
    memory_turns: Annotated[int, Field(ge=0, le=32)] = 4
    memory: Literal["turns", "summary", "none"] = "turns"  # as [brain.llm]
    facts: Literal["text", "slots"] = "text"
    # as [brain.llm] answer_first: the catalog's answer is said first and the server is asked
    # to continue after it (an assistant message and a note: no server-side prefill needed)
    answer_first: bool = False
    first_sentence_s: Annotated[float, Field(ge=0)] = 8.0  # as [brain.llm]

    def api_key(self) -> SecretStr | None:
        return read_secret(self.api_key_env)


class BrainConfig(_Section):
    backend: Literal["catalog", "llm", "openai"] = "catalog"
    catalog: CatalogBrainConfig = CatalogBrainConfig()
    llm: LLMBrainConfig = LLMBrainConfig()
    openai: OpenAIBrainConfig = OpenAIBrainConfig()


class EspeakVoiceConfig(_Section):
    voice_en: str = "en-us"
    voice_zh: str = "cmn"
    words_per_minute: Annotated[int, Field(ge=80, le=450)] = 170
    gain: Annotated[float, Field(gt=0, le=4)] = 1.0


class PiperVoiceConfig(_Section):
    model: str = ""
    config: str = ""
    noise_scale: Annotated[float, Field(ge=0, le=2)] | None = None
    length_scale: Annotated[float, Field(gt=0, le=4)] | None = None
    noise_w: Annotated[float, Field(ge=0, le=2)] | None = None
    speaker_id: Annotated[int, Field(ge=0)] | None = None
    # "auto": the decoder build_engines.py pruned for this voice when it is fresh and passed
    # the build's floors, else the voice's own decoder, streamed in chunks either way (the
    # whole voice without torch); "engine": the pruned decoder or no Piper voice; "onnx": the
    # whole voice; "split": ONNX encoder + the voice's own decoder in PyTorch.
    decoder: Literal["auto", "engine", "onnx", "split"] = "auto"
    prune: Annotated[float, Field(gt=0, lt=1)] = 0.5  # build_engines.py's ratio for the decoder
    work_dir: str = ""
    # More Piper voices, by language ("zh": a Chinese voice), each an .onnx beside its
    # .onnx.json; a reply goes to its language's voice, and to espeak-ng where there is none.
    voices: dict[Literal["en", "zh"], str] = {}


class HttpVoiceConfig(_Section):
    # An OpenAI-compatible speech endpoint (POST {base_url}/audio/speech): a voice-clone
    # server (CosyVoice, GPT-SoVITS, Fish Speech front-ends) or OpenAI. The local voice
    # (Piper when voice.piper.model is set, else espeak-ng) speaks when it fails.
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "tts-1"
    voice: str = "alloy"  # the server's voice: your cloned voice's name or id
    api_key_env: str = "STREAMBOT_TTS_API_KEY"
    # wav states its own rate; pcm is at the rate the server states (an x-sample-rate header
    # or "rate=" in its Content-Type), else at pcm_rate (OpenAI's pcm: 24 kHz s16le)
    response_format: Literal["pcm", "wav"] = "wav"
    pcm_rate: Annotated[int, Field(ge=8000, le=96000)] = 24000
    speed: Annotated[float, Field(ge=0.25, le=4.0)] = 1.0
    extra: dict[str, str | int | float | bool] = {}  # more JSON fields the server takes
    first_byte_timeout_s: Annotated[float, Field(gt=0, le=60)] = 4.0  # to the first audio
    idle_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0  # between pieces of audio
    total_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0  # waiting, per request
    # The most audio a sentence may bring (at speed 1): floor + per character, a CJK ideograph
    # counting as 3. Speech takes ~0.07 s per English character and ~0.25 s per Chinese one:
    # the defaults allow about twice that, plus 3 s for a short line's pauses. A stream that
    # runs past it (a TTS that missed its end token) is broken off there.
    max_audio_floor_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    max_audio_s_per_char: Annotated[float, Field(gt=0, le=2)] = 0.15
    retry: RetryConfig = RetryConfig(retries=1)

    def api_key(self) -> SecretStr | None:
        return read_secret(self.api_key_env)


class VoiceConfig(_Section):
    backend: Literal["espeak", "piper", "http"] = "espeak"
    espeak: EspeakVoiceConfig = EspeakVoiceConfig()
    piper: PiperVoiceConfig = PiperVoiceConfig()
    http: HttpVoiceConfig = HttpVoiceConfig()


class MouthFaceConfig(_Section):
    batch_frames: Annotated[int, Field(ge=1, le=50)] = 5
    silence_db: float = -50.0
    loud_db: float = -18.0
    attack: Annotated[float, Field(gt=0, le=1)] = 0.7
    release: Annotated[float, Field(gt=0, le=1)] = 0.35


class TritonFaceConfig(_Section):
    """The face served by a Triton Inference Server (``[face.wav2lip] engine = "triton"``)."""

    url: str = "127.0.0.1:8000"  # host:port of its HTTP (or gRPC) endpoint
    model: str = "wav2lip-p50"  # a model of the repository build_engines.py --backends triton wrote
    protocol: Literal["http", "grpc"] = "http"
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0  # one batch, before the local engine
    shared_memory: Literal["auto", "off"] = "auto"  # auto: system shared memory on this host
    retry: RetryConfig = RetryConfig()


class Wav2LipFaceConfig(_Section):
    checkpoint: str = ""
    avatar: str = ""
    avatar_cache: str = ""  # "" = default_avatar_cache()
    face_box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = None
    pads: Annotated[list[int], Field(min_length=4, max_length=4)] = [0, 10, 0, 0]
    # "auto": the fastest usable engine build_engines.py recorded in [engines] dir's manifest
    # (fresh, and built for this machine), else the checkpoint itself on torch.
    # "triton": rendered by a Triton server ([face.wav2lip.triton]), "auto"'s engine standing
    # in while the server cannot answer.
    engine: Literal["auto", "torch", "onnx", "triton"] = "auto"
    onnx_path: str = ""
    device: str = "auto"
    first_batch: Annotated[int, Field(ge=0, le=256)] = 0  # 0 = fitted to the device
    batch: Annotated[int, Field(ge=0, le=256)] = 0
    triton: TritonFaceConfig = TritonFaceConfig()


class FaceConfig(_Section):
    backend: Literal["mouth", "wav2lip"] = "mouth"
    # A face that renders slower than real time starts each sentence later, by as much as it
    # would fall behind, so the voice never breaks up. Under ``slow_floor`` x real time:
    # "wait" keeps doing that (long pauses), "mouth" finishes the turn with the mouth face.
    slow: Literal["wait", "mouth"] = "wait"
    slow_floor: Annotated[float, Field(gt=0, le=1)] = 0.5
    buffer_s: Annotated[float, Field(ge=1, le=60)] = 8.0  # frames the presenter may hold
    mouth: MouthFaceConfig = MouthFaceConfig()
    wav2lip: Wav2LipFaceConfig = Wav2LipFaceConfig()


class FileSinkConfig(_Section):
    enabled: bool = False
    path: str = "streambot.mp4"
    preset: str = "veryfast"
    crf: Annotated[int, Field(ge=0, le=51)] = 23


class VirtualCamSinkConfig(_Section):
    enabled: bool = False
    device: str = ""


class AudioDeviceSinkConfig(_Section):
    enabled: bool = False
    device: str = ""
    latency_s: Annotated[float, Field(gt=0, le=2)] = 0.1


class NullSinkConfig(_Section):
    enabled: bool = True


class StreamSinkConfig(_Section):
    enabled: bool = False
    url: str = "udp://127.0.0.1:9999"
    video_bitrate: str = "2500k"
    audio_bitrate: str = "128k"
    gop_seconds: Annotated[float, Field(gt=0, le=10)] = 1.0
    preset: str = "veryfast"


class SinksConfig(_Section):
    file: FileSinkConfig = FileSinkConfig()
    stream: StreamSinkConfig = StreamSinkConfig()
    virtualcam: VirtualCamSinkConfig = VirtualCamSinkConfig()
    audio_device: AudioDeviceSinkConfig = AudioDeviceSinkConfig()
    null: NullSinkConfig = NullSinkConfig()
    queue_frames: Annotated[int, Field(ge=1, le=250)] = 12


class ObsConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 4455
    password_env: str = "OBS_WEBSOCKET_PASSWORD"
    timeout_s: Annotated[float, Field(gt=0)] = 3.0
    stream_url: str = ""
    scene_idle: str = "streambot idle"
    scene_talking: str = "streambot talking"
    scene_showcase: str = "streambot showcase"
    scene_brb: str = "streambot brb"
    caption_source: str = "streambot caption"
    product_source: str = "streambot product"
    media_source: str = "streambot stream"
    # How far OBS's picture lags the presenter (bench/obs_latency.py measures it): scene and
    # caption changes wait this long so they land with the picture they belong to. "auto":
    # the Media Source's lag when it plays the stream sink, else 0 (a virtual camera).
    picture_delay_s: Literal["auto"] | Annotated[float, Field(ge=0, le=10)] = "auto"

    def password(self) -> SecretStr | None:
        return read_secret(self.password_env)


Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


class OverlayLabelConfig(_Section):
    # Platform rules and China's 2025 labelling measures want AI hosts visibly labelled.
    enabled: bool = True
    text: Annotated[str, Field(max_length=120)] = "AI-generated host · AI生成内容"
    corner: Corner = "top-right"


class OverlayCaptionConfig(_Section):
    enabled: bool = True  # the question being answered, at the bottom


class OverlayCardConfig(_Section):
    enabled: bool = True  # picture, name, price, stock and shipping of the product discussed
    corner: Corner = "top-left"


def _deadline(value: str) -> str:
    if value:
        from datetime import datetime

        when = datetime.fromisoformat(value)  # ValueError names the text
        if when.tzinfo is None:
            raise ValueError("give the time zone too, e.g. 2026-12-24T20:00:00+08:00")
    return value


class OverlayCountdownConfig(_Section):
    # A deal that ends at ``ends_at`` (ISO 8601 with its time zone); a script's countdown
    # segment starts one too. ``{time}`` is the time left.
    ends_at: Annotated[str, AfterValidator(_deadline)] = ""
    text: Annotated[str, Field(max_length=120)] = "Deal ends in {time}"
    corner: Corner = "top-right"


class OverlayConfig(_Section):
    # Overlays drawn into the picture itself (every sink gets them, with or without OBS).
    enabled: bool = True
    font: str = ""  # a .ttf/.otf/.ttc; "": the Noto Sans CJK SC that mplfonts ships
    label: OverlayLabelConfig = OverlayLabelConfig()
    caption: OverlayCaptionConfig = OverlayCaptionConfig()
    card: OverlayCardConfig = OverlayCardConfig()
    countdown: OverlayCountdownConfig = OverlayCountdownConfig()


class ScriptConfig(_Section):
    # A sales script (TOML, see streambot/script/model.py); "": the idle pitch rotation.
    path: str = ""
    # With an LLM brain each line is reworded (a 24/7 loop never repeats word for word), and
    # said as authored when the rewording fails the catalog guard; false: always as authored.
    reword: bool = True


# The panel's token opens every action from the LAN; a guessable one is no lock.
PANEL_TOKEN_MIN_CHARS = 16


class PanelConfig(_Section):
    # The operator's web page (streambot/panel/): watch the stream and steer the host.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8766
    token_env: str = "STREAMBOT_PANEL_TOKEN"  # needed when bound beyond this computer
    allowed_hosts: AllowedHosts = []
    operator: Annotated[str, Field(min_length=1, max_length=40)] = "operator"  # in the log
    preview_fps: Annotated[float, Field(gt=0, le=10)] = 4.0
    preview_width: Annotated[int, Field(ge=64, le=1920)] = 480

    def token(self) -> SecretStr | None:
        return read_secret(self.token_env)

    def check_exposure(self) -> None:
        """The panel reachable from other machines must need the token."""
        if self.enabled:
            require_token_off_loopback(
                "panel", "the panel", self.host, self.token_env, PANEL_TOKEN_MIN_CHARS
            )


class StoreConfig(_Section):
    path: str = "streambot.db"
    # The record is kept this many days, then pruned hourly (0 keeps it forever); messages
    # still waiting for an answer are never pruned.
    keep_days: Annotated[float, Field(ge=0)] = 30.0


class MetricsConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108
    allowed_hosts: AllowedHosts = []


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    stream: StreamConfig = StreamConfig()
    chat: ChatConfig = ChatConfig()
    triage: TriageConfig = TriageConfig()
    ingest: IngestConfig = IngestConfig()
    host: HostConfig = HostConfig()
    persona: PersonaConfig = PersonaConfig()
    brain: BrainConfig = BrainConfig()
    voice: VoiceConfig = VoiceConfig()
    face: FaceConfig = FaceConfig()
    engines: EnginesConfig = EnginesConfig()
    sinks: SinksConfig = SinksConfig()
    obs: ObsConfig = ObsConfig()
    overlay: OverlayConfig = OverlayConfig()
    script: ScriptConfig = ScriptConfig()
    panel: PanelConfig = PanelConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see config.toml for every key)"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {error['msg']}{shown}"


# Keys that moved to the section that owns them: an older config is read with one warning
# line per key (so nobody's config breaks silently), unless it says two different things.
MOVED_KEYS = {
    "brain.llm.engines_dir": "engines.dir",
    "voice.piper.engines_dir": "engines.dir",
    "face.wav2lip.engines_dir": "engines.dir",
    "triage.queue_size": "ingest.queue_size",
    "triage.gift_window_s": "ingest.gift_window_s",
    "triage.resume_min_priority": "ingest.resume_min_priority",
    "host.interrupt_priority": "ingest.interrupt_priority",
    "brain.catalog.host_name": "persona.name",
    **{
        f"{service}.{key}": f"{service}.retry.{key}"
        for service in ("brain.openai", "voice.http")
        for key in ("retries", "failure_threshold", "open_seconds")
    },
}
_ABSENT = object()


def _table(data: dict, dotted: str, create: bool) -> tuple[dict | None, str]:
    """The table holding ``dotted``'s last key (made when ``create``), and that key."""
    *path, key = dotted.split(".")
    for part in path:
        inner = data.get(part)
        if not isinstance(inner, dict):
            if not create or inner is not None:
                return None, key
            inner = data[part] = {}
        data = inner
    return data, key


def migrate(data: dict, source: str = "config") -> list[str]:
    """Move the keys of an older config (``MOVED_KEYS``) to where they live now, in place;
    one line per key moved, to be said as a warning. A moved key that disagrees with its new
    place, or with another old key moved there, is a ConfigError naming both."""
    notes: list[str] = []
    moved_from: dict[str, str] = {}
    for old, new in MOVED_KEYS.items():
        table, key = _table(data, old, create=False)
        if table is None or key not in table:
            continue
        value = table.pop(key)
        target, new_key = _table(data, new, create=True)
        if target is None:
            raise ConfigError(f"{source}: {old} is now {new}, but {new} is not a table here")
        present = target.get(new_key, _ABSENT)
        if present is not _ABSENT and present != value:
            said = f"{moved_from[new]}" if new in moved_from else new
            raise ConfigError(
                f"{source}: {old} is now {new}, and {said} says otherwise ({value!r} and "
                f"{present!r}): keep one value, under {new}"
            )
        target[new_key] = value
        moved_from[new] = old
        notes.append(f"{source}: {old} is now {new}; read from the old place (move it there)")
    return notes


def parse_config(data: dict, source: str = "config") -> Config:
    for note in migrate(data, source):
        log.warning("%s", note)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: invalid configuration:\n  {problems}") from None


def load_config(path: str | Path | None) -> Config:
    """Load ``path`` (or the embedded defaults when ``None``); raise ConfigError on any problem."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))
