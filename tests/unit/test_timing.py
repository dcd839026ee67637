"""The timing contract's numbers, pinned here once so every other module may use the names."""

import pytest

from streambot import timing
from streambot.config import ConfigError, parse_config
from streambot.timing import DEFAULT_FPS, FACE_RATE, OUTPUT_RATE, samples_per_frame


def test_the_contract_numbers() -> None:
    assert (OUTPUT_RATE, FACE_RATE, DEFAULT_FPS) == (48_000, 16_000, 25)
    assert samples_per_frame(25) == 1920
    assert samples_per_frame(25, FACE_RATE) == 640
    assert samples_per_frame(30) == 1600 and samples_per_frame(50, FACE_RATE) == 320


@pytest.mark.parametrize(("fps", "rate"), [(7, OUTPUT_RATE), (30, FACE_RATE), (24, FACE_RATE)])
def test_a_rate_that_is_not_whole_frames_is_refused(fps: int, rate: int) -> None:
    with pytest.raises(ValueError, match=f"{rate} Hz is not a whole number .* at {fps} fps"):
        samples_per_frame(fps, rate)


def test_no_frame_rate_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="fps must be at least 1"):
        samples_per_frame(0)


def test_the_old_voice_base_names_are_the_same_objects() -> None:
    from streambot.voice import base

    assert base.samples_per_frame is timing.samples_per_frame
    assert (base.OUTPUT_RATE, base.FACE_RATE) == (OUTPUT_RATE, FACE_RATE)


def test_config_refuses_an_fps_without_whole_output_or_face_frames() -> None:
    with pytest.raises(ConfigError, match=r"stream\.fps: .*7 fps gives no whole number of 48000"):
        parse_config({"stream": {"fps": 7}})
    # 30 fps is whole at 48 kHz but not at the face's 16 kHz: refused at load, naming the fix
    with pytest.raises(ConfigError, match=r"30 fps .* 16000 Hz .*use one of .*20, 25, 32, 40, 50"):
        parse_config({"stream": {"fps": 30}})
    assert parse_config({"stream": {"fps": 50}}).stream.fps == 50
    assert parse_config({}).stream.fps == DEFAULT_FPS
    assert parse_config({}).stream.sample_rate == OUTPUT_RATE


def test_timing_is_a_leaf_module() -> None:
    """Anything may import it: it imports nothing from the package."""
    import ast
    from pathlib import Path

    imported = []
    for node in ast.walk(ast.parse(Path(timing.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    assert imported and not [m for m in imported if m.startswith("streambot")]
