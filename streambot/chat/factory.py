"""Builds the configured chat sources. A platform that cannot start here (a missing extra, a
missing token) is reported once with what to set, and the host goes live with the others."""

from __future__ import annotations

import logging
import os
from typing import NoReturn

from streambot.chat.base import ChatSource
from streambot.config import Config, read_secret

log = logging.getLogger(__name__)


class SourceSetupError(RuntimeError):
    pass


def _need(env_name: str, what: str) -> str:
    secret = read_secret(env_name)
    if secret is None:
        raise SourceSetupError(f"{what}: set the environment variable {env_name}")
    return secret.get_secret_value()


def _twitch(config: Config) -> ChatSource:
    cfg = config.chat.twitch
    from streambot.chat.twitch import TwitchChatSource

    if not cfg.bot_user_id or not cfg.broadcaster_user_id:
        raise SourceSetupError("chat.twitch.bot_user_id and broadcaster_user_id are required")
    return TwitchChatSource(
        os.environ.get(cfg.client_id_env) or _need(cfg.client_id_env, "Twitch client id"),
        read_secret(cfg.client_secret_env) or _missing(cfg.client_secret_env),
        cfg.bot_user_id,
        cfg.broadcaster_user_id,
        access_token=read_secret(cfg.access_token_env) or _missing(cfg.access_token_env),
        refresh_token=read_secret(cfg.refresh_token_env),
        reply_in_chat=cfg.reply_in_chat,
        shared_chat=cfg.shared_chat,
    )


def _missing(env_name: str) -> NoReturn:
    raise SourceSetupError(f"set the environment variable {env_name}")


def _bilibili(config: Config) -> ChatSource:
    cfg = config.chat.bilibili
    from streambot.chat.bilibili import BilibiliChatSource, BilibiliOpenPlatformSource

    if cfg.mode == "open_platform":
        if not cfg.app_id:
            raise SourceSetupError("chat.bilibili.app_id is required in open_platform mode")
        return BilibiliOpenPlatformSource(
            cfg.app_id,
            _need(cfg.access_key_id_env, "Bilibili open platform key id"),
            read_secret(cfg.access_key_secret_env) or _missing(cfg.access_key_secret_env),
            _need(cfg.identity_code_env, "Bilibili 身份码"),
        )
    if not cfg.room_id:
        raise SourceSetupError("chat.bilibili.room_id is required")
    return BilibiliChatSource(cfg.room_id, cookie=read_secret(cfg.cookie_env))


def _mic(config: Config) -> ChatSource:
    cfg = config.chat.mic
    from streambot.chat.mic import MicChatSource

    device: str | int | None = cfg.device or None
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    return MicChatSource(cfg.model, device=device, language=cfg.language or None, user=cfg.user)


def build_platform_sources(config: Config) -> list[ChatSource]:
    sources: list[ChatSource] = []
    for name, enabled, build in (
        ("twitch", config.chat.twitch.enabled, _twitch),
        ("bilibili", config.chat.bilibili.enabled, _bilibili),
        ("mic", config.chat.mic.enabled, _mic),
    ):
        if not enabled:
            continue
        try:
            sources.append(build(config))
        except ImportError as exc:
            log.error("chat.%s unavailable (%s): pip install 'streambot[chat]'", name, exc)
        except (SourceSetupError, ValueError, OSError, RuntimeError) as exc:
            log.error("chat.%s unavailable, going live without it: %s", name, exc)
    return sources
