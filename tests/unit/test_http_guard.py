"""The one rule of which hosts the daemon's HTTP servers answer to (DNS rebinding), and what
counts as this computer, for the panel, POST /chat and /metrics alike."""

from __future__ import annotations

import aiohttp
import pytest

from streambot.config import ConfigError, parse_config, require_token_off_loopback
from streambot.metrics import Metrics, serve_metrics

REBIND = "rebind.attacker.test"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("127.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.evil.example", False),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("", False),
    ],
)
def test_only_localhost_and_loopback_addresses_are_this_computer(host, loopback):
    from streambot.http_guard import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.evil.example", "127.0.0.1.nip.io"])
def test_a_name_that_merely_starts_with_127_is_off_loopback_and_needs_a_token(host):
    with pytest.raises(ConfigError, match="STREAMBOT_PANEL_TOKEN"):
        require_token_off_loopback("panel", "the panel", host, "STREAMBOT_PANEL_TOKEN")


@pytest.mark.parametrize(
    ("bind", "allowed", "host", "answered"),
    [
        ("127.0.0.1", [], "127.0.0.1:8766", True),
        ("127.0.0.1", [], "localhost:8766", True),
        ("127.0.0.1", [], "[::1]:8766", True),
        ("127.0.0.1", [], "127.0.0.1", True),
        ("127.0.0.1", [], f"{REBIND}:8766", False),
        ("127.0.0.1", [], "127.evil.example:8766", False),
        ("127.0.0.1", [], "192.168.1.20:8766", False),
        ("127.0.0.1", [], "", False),
        ("127.0.0.1", [], None, False),
        ("127.0.0.1", [], "user@127.0.0.1", False),
        ("192.168.1.20", [], "192.168.1.20:8766", True),
        ("192.168.1.20", [], "192.168.1.21:8766", False),
        ("192.168.1.20", ["studio.local"], "Studio.Local:8766", True),
        ("192.168.1.20", ["studio.local"], f"{REBIND}:8766", False),
        ("0.0.0.0", [], "10.0.0.7:8766", True),  # an address typed in: it cannot be rebound
        ("0.0.0.0", [], "[fe80::1]:8766", True),
        ("0.0.0.0", [], f"{REBIND}:8766", False),
        ("0.0.0.0", ["studio.local"], "studio.local", True),
    ],
)
def test_a_server_answers_only_to_this_computers_names_and_those_listed(
    bind, allowed, host, answered
):
    from streambot.http_guard import HostRule

    assert HostRule(bind, allowed).allows(host) is answered


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8766", True),  # not a web page: curl, a script
        ("http://localhost:3000", "127.0.0.1:8766", True),
        ("http://127.0.0.1:8766", "127.0.0.1:8766", True),
        ("http://192.168.1.20:8766", "192.168.1.20:8766", True),  # the panel's own page
        ("https://evil.example", "127.0.0.1:8766", False),
        ("http://127.evil.example", "127.0.0.1:8766", False),
        ("null", "127.0.0.1:8766", False),
        ("http://[::1", "127.0.0.1:8766", False),  # not even a URL
    ],
)
def test_only_pages_on_this_computer_or_of_the_server_itself_may_send(origin, host, allowed):
    from streambot.http_guard import origin_allowed

    assert origin_allowed(origin, host) is allowed


@pytest.mark.parametrize("name", ["http://studio.local", "studio.local:8766", "*.local", ""])
def test_allowed_hosts_must_be_bare_names(name):
    with pytest.raises(ConfigError, match=r"panel\.allowed_hosts"):
        parse_config({"panel": {"allowed_hosts": [name]}})


def test_a_short_panel_token_is_refused_for_a_lan_bind(monkeypatch):
    monkeypatch.setenv("STREAMBOT_PANEL_TOKEN", "short-token")
    config = parse_config({"panel": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match=r"STREAMBOT_PANEL_TOKEN.*16 characters"):
        config.panel.check_exposure()
    config.panel.host = "127.0.0.1"
    config.panel.check_exposure()  # on loopback any token will do


async def test_metrics_refuse_a_rebinding_host_and_answer_loopback_ones():
    runner = await serve_metrics(Metrics(), "127.0.0.1", 0, lambda: {"ok": True})
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/healthz"):
                url = f"http://127.0.0.1:{port}{path}"
                async with http.get(url, headers={"Host": f"{REBIND}:{port}"}) as r:
                    assert r.status == 421, path
                for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
                    async with http.get(url, headers={"Host": host}) as r:
                        assert r.status == 200, (path, host)
    finally:
        await runner.cleanup()


async def test_metrics_on_a_lan_bind_answer_the_names_the_operator_listed():
    runner = await serve_metrics(
        Metrics(), "127.0.0.1", 0, lambda: {"ok": True}, allowed_hosts=["prometheus-target.lan"]
    )
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/metrics"
            async with http.get(url, headers={"Host": f"prometheus-target.lan:{port}"}) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
