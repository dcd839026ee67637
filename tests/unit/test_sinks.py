import av
import numpy as np
import pytest

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat
from streambot.stage.sinks.fanout import SinkFanout
from streambot.stage.sinks.file import FileSink
from streambot.stage.sinks.null import NullSink
from streambot.stage.sinks.virtualcam import VirtualCamSink
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE

FMT = StreamFormat(320, 180, DEFAULT_FPS, OUTPUT_RATE)
SPF = FMT.samples_per_frame


def test_virtualcam_without_v4l2loopback_says_how_to_load_it():
    pytest.importorskip("pyvirtualcam")
    import glob

    if glob.glob("/dev/video*"):
        pytest.skip("a video device exists here")
    with pytest.raises(SinkUnavailable, match="modprobe v4l2loopback"):
        VirtualCamSink().open(FMT)


async def test_unavailable_sink_is_skipped_and_others_run():
    class Missing(NullSink):
        name = "missing"

        def open(self, fmt):
            raise SinkUnavailable("not here: do X")

    null = NullSink()
    fanout = SinkFanout([Missing(), null], FMT)
    assert fanout.unavailable == {"missing": "not here: do X"}
    for k in range(5):
        await fanout.write(k, np.zeros((180, 320, 3), np.uint8), np.zeros(SPF, np.float32))
    await fanout.close()
    assert null.frames == 5


async def test_file_sink_writes_playable_mp4_with_equal_durations(tmp_path):
    path = tmp_path / "out.mp4"
    fanout = SinkFanout([FileSink(path, preset="ultrafast")], FMT)
    for k in range(50):
        frame = np.full((180, 320, 3), k * 5, np.uint8)
        pcm = np.full(SPF, 0.1 if k % 2 else -0.1, np.float32)
        await fanout.write(k, frame, pcm)
    await fanout.close()
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        assert video.average_rate == 25 and video.frames == 50
        assert audio.sample_rate == OUTPUT_RATE
        v_dur = float(video.duration * video.time_base)
        a_dur = float(audio.duration * audio.time_base)
        assert abs(v_dur - 2.0) < 1e-6 and abs(a_dur - v_dur) <= 1 / 25


def test_audio_device_without_portaudio_says_how_to_install_it(monkeypatch):
    from streambot.stage.sinks.audio_device import AudioDeviceSink

    try:
        import sounddevice  # noqa: F401

        pytest.skip("PortAudio is installed here")
    except OSError:
        pass
    except ImportError:
        pytest.skip("sounddevice is not installed")
    with pytest.raises(SinkUnavailable, match="libportaudio2"):
        AudioDeviceSink().open(FMT)


async def test_picture_only_sinks_are_held_back_and_others_are_not():
    class Recording(NullSink):
        def __init__(self, name: str, picture_only: bool) -> None:
            super().__init__()
            self.name, self.picture_only, self.indices = name, picture_only, []

        def write(self, index, frame, pcm):
            self.indices.append(index)

    camera, stream = Recording("camera", True), Recording("stream", False)
    fanout = SinkFanout([camera, stream], FMT)
    assert fanout.delay_pictures(3) == ["camera"]
    for k in range(10):
        await fanout.write(k, np.zeros((180, 320, 3), np.uint8), np.zeros(SPF, np.float32))
    await fanout.close()
    assert stream.indices == list(range(10))
    assert camera.indices == list(range(7))  # frame k shown when frame k + 3 was handed over


def test_the_file_keeps_each_picture_as_it_was_when_written(tmp_path):
    """The encoder wraps the presenter's frame instead of copying it: what it encodes is
    read inside the write, so a frame buffer used again afterwards changes nothing."""
    sink = FileSink(tmp_path / "out.mp4", preset="ultrafast", crf=0)
    sink.open(FMT)
    buffer = np.zeros((180, 320, 3), np.uint8)
    shades = [40 * k for k in range(6)]
    for k, shade in enumerate(shades):
        buffer[:] = shade
        sink.write(k, buffer, np.zeros(SPF, np.float32))
    buffer[:] = 255  # reused after the last write
    sink.close()
    with av.open(str(tmp_path / "out.mp4")) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    means = [float(p.mean()) for p in pictures]
    assert len(means) == len(shades)  # yuv420p's rounding moves a shade by one at most
    assert all(abs(mean - shade) <= 2 for mean, shade in zip(means, shades, strict=True))
