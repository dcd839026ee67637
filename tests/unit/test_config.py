import logging
import subprocess
import sys
from pathlib import Path

import pytest

from streambot.config import Config, ConfigError, load_config, parse_config
from streambot.logs import RedactingFilter

ROOT = Path(__file__).resolve().parents[2]


def test_documented_config_equals_embedded_defaults():
    assert load_config(ROOT / "config.toml") == Config()


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"triage\.max_charz: unknown key"):
        parse_config({"triage": {"max_charz": 10}})


def test_bad_value_names_key_and_problem():
    with pytest.raises(ConfigError) as err:
        parse_config({"stream": {"fps": 0}, "sinks": {"file": {"crf": "high"}}})
    text = str(err.value)
    assert "stream.fps" in text and "greater than or equal to 1" in text
    assert "sinks.file.crf" in text and "'high'" in text


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[stream\nfps = 25\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_exits_2_and_names_the_bad_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[voice.espeak]\nwords_per_minute = "fast"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "streambot", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "voice.espeak.words_per_minute" in proc.stderr


def test_an_older_config_is_read_with_one_warning_per_moved_key(caplog):
    older = {
        "brain": {
            "llm": {"engines_dir": "built"},
            "openai": {"retries": 0},
            "catalog": {"host_name": "Zoe"},
        },
        "face": {"wav2lip": {"engines_dir": "built"}},
        "triage": {"queue_size": 5, "max_chars": 200},
        "host": {"interrupt_priority": 20, "max_reply_chars": 300},
    }
    with caplog.at_level(logging.WARNING, "streambot.config"):
        config = parse_config(older, "old.toml")
    assert config.engines.dir == "built"
    assert config.brain.openai.retry.retries == 0
    assert (config.ingest.queue_size, config.ingest.interrupt_priority) == (5, 20)
    assert (config.triage.max_chars, config.host.max_reply_chars) == (200, 300)  # kept
    assert config.persona.name == "Zoe"
    lines = [r.getMessage() for r in caplog.records]
    assert "old.toml: brain.llm.engines_dir is now engines.dir" in lines[0]
    assert any("old.toml: brain.catalog.host_name is now persona.name" in line for line in lines)
    assert len(lines) == 6  # one per key moved


def test_old_keys_that_disagree_stop_the_start_naming_both():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "brain": {"llm": {"engines_dir": "a"}},
                "voice": {"piper": {"engines_dir": "b"}},
            }
        )
    text = str(err.value)
    assert "voice.piper.engines_dir is now engines.dir" in text
    assert "brain.llm.engines_dir says otherwise" in text
    with pytest.raises(ConfigError, match=r"ingest\.queue_size says otherwise"):
        parse_config({"triage": {"queue_size": 4}, "ingest": {"queue_size": 8}})


def test_secret_comes_from_environment_and_never_reaches_logs(monkeypatch, caplog):
    monkeypatch.setenv("MY_CHAT_TOKEN", "s3cret-token-value")
    config = parse_config({"chat": {"local": {"token_env": "MY_CHAT_TOKEN"}}})
    token = config.chat.local.token()
    assert token is not None and token.get_secret_value() == "s3cret-token-value"
    assert "s3cret" not in repr(token) and "s3cret" not in repr(config)
    logger = logging.getLogger("test.secret")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.secret"):
        logger.info("connecting with %s", token.get_secret_value())
    assert "s3cret-token-value" not in caplog.text
    assert "***" in caplog.text


def test_unset_secret_is_none(monkeypatch):
    monkeypatch.delenv("STREAMBOT_CHAT_TOKEN", raising=False)
    assert Config().chat.local.token() is None


def test_chat_body_limit_has_an_upper_bound():
    with pytest.raises(ConfigError, match=r"chat\.local\.max_body_bytes"):
        parse_config({"chat": {"local": {"max_body_bytes": 10**10}}})
