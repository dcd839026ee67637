"""Every script in bench/ still loads: a bench that no longer imports (a name moved in a tidy,
as ``SIZES`` did from bench/llm.py) is found here, not by the next person who measures. A
script whose optional package is missing is skipped, naming it."""

from __future__ import annotations

import pytest

from tests.bench_script import BENCH, load

SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_bench_script_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # as when run: its siblings import by name
    try:
        load(name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in SCRIPTS or missing in ("streambot", "tests"):
            raise  # one of ours: a broken import, not a missing package
        pytest.skip(f"bench/{name}.py needs {exc.name}, which is not installed")
