import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

from streambot.face import avatar as avatar_mod  # noqa: E402
from streambot.face.avatar import (  # noqa: E402
    PreparedAvatar,
    load_avatar,
    prepare_avatar,
)
from streambot.face.avatar_boxes import smooth_boxes  # noqa: E402
from streambot.face.avatar_source import AvatarError, source_size  # noqa: E402

# The astronaut's face in skimage.data.astronaut() (512x512), as (x1, y1, x2, y2).
KNOWN_FACE = (170, 40, 300, 200)
REPO = Path(__file__).resolve().parents[2]


def overlap(box_yyxx: np.ndarray, known: tuple[int, int, int, int]) -> float:
    """Share of the box's area that lies inside the known face region."""
    y1, y2, x1, x2 = (int(v) for v in box_yyxx)
    kx1, ky1, kx2, ky2 = known
    iw = max(0, min(x2, kx2) - max(x1, kx1))
    ih = max(0, min(y2, ky2) - max(y1, ky1))
    return iw * ih / ((x2 - x1) * (y2 - y1))


def check_shapes(a: PreparedAvatar, n: int, h: int, w: int, loop: int | None = None) -> None:
    """n distinct frames of h x w, played in a loop of ``loop`` positions (default n)."""
    assert a.frames.shape == (n, h, w, 3) and a.frames.dtype == np.uint8
    assert a.loop.shape == (loop or n,) and a.loop.dtype == np.int32
    assert a.boxes.shape == (n, 4) and a.boxes.dtype == np.int32
    assert a.faces.shape == (n, 96, 96, 3) and a.faces.dtype == np.uint8
    y1, y2, x1, x2 = a.boxes.T
    assert (y1 >= 0).all() and (x1 >= 0).all() and (y2 <= h).all() and (x2 <= w).all()
    assert (y2 > y1).all() and (x2 > x1).all()


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def gray_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "gray.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def prepared(astronaut_png, tmp_path_factory) -> tuple[PreparedAvatar, Path, float]:
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    a = prepare_avatar(astronaut_png, cache)
    return a, cache, time.perf_counter() - start


def write_shifting_video(path: Path, frames: int = 20, shift: int = 3) -> None:
    """The astronaut moving ``shift`` px to the right per frame, 25 fps H.264 yuv420p."""
    base = skimage_data.astronaut()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for i in range(frames):
            img = np.roll(base, i * shift, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_still_image_finds_the_astronauts_face(prepared):
    a, cache, _ = prepared
    check_shapes(a, 100, 512, 512)  # fps * 4 frames of breathing
    assert a.fps == 25
    assert overlap(a.boxes[0], KNOWN_FACE) > 0.9
    y1, y2, x1, x2 = a.boxes[0]
    assert 70 <= x2 - x1 <= 160 and 70 <= y2 - y1 <= 170  # a face, not the whole picture
    assert (a.boxes == a.boxes[0]).all()  # one fixed box around the breathing face
    assert a.folder == cache / a.key and len(a.key) == 16


def test_still_image_loop_is_smooth_and_moves(prepared, astronaut_png):
    a, _, _ = prepared
    source = np.asarray(Image.open(astronaut_png).convert("RGB"))
    assert np.array_equal(a.frames[0], source)  # the loop starts on the photo itself
    steps = [mean_diff(a.frames[i], a.frames[i + 1]) for i in range(len(a.frames) - 1)]
    assert max(steps) < 1.5  # consecutive frames differ little
    assert mean_diff(a.frames[-1], a.frames[0]) < 1.5  # and the loop closes without a jump
    assert mean_diff(a.frames[50], a.frames[0]) > 2.0  # but it does breathe
    # The face crops follow the frames: the crop of frame i is the box of frame i.
    assert mean_diff(a.faces[0], a.faces[1]) < 3.0


def test_cache_folder_holds_the_preparation(prepared):
    a, _, _ = prepared
    names = {p.name for p in a.folder.iterdir()}
    assert {"frames.npy", "boxes.npy", "faces.npy", "loop.npy", "avatar.json"} <= names
    meta = json.loads((a.folder / "avatar.json").read_text())
    assert meta["key"] == a.key and meta["fps"] == 25 and meta["frame_count"] == 100
    assert meta["loop_length"] == 100
    assert meta["source"] == "astronaut.png" and meta["format_version"] == 2
    assert meta["box0_y1_y2_x1_x2"] == [int(v) for v in a.boxes[0]]
    loaded = load_avatar(a.folder)
    assert np.array_equal(loaded.frames, a.frames) and np.array_equal(loaded.faces, a.faces)
    assert np.array_equal(loaded.boxes, a.boxes) and loaded.key == a.key
    assert np.array_equal(loaded.loop, np.arange(100))
    # The frames are mapped from the file, not read into memory.
    assert isinstance(loaded.frames, np.memmap) and isinstance(a.frames, np.memmap)


def test_second_call_hits_the_cache(prepared, astronaut_png, monkeypatch):
    a, cache, _ = prepared

    def no_detection(image):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(avatar_mod, "detect_face", no_detection)
    start = time.perf_counter()
    again = prepare_avatar(astronaut_png, cache)
    assert time.perf_counter() - start < 1.0
    assert again.key == a.key and again.folder == a.folder
    assert np.array_equal(again.boxes, a.boxes)
    # Other parameters are another preparation with another key.
    with pytest.raises(AssertionError, match="cache"):
        prepare_avatar(astronaut_png, cache, fps=10)


def test_given_face_box_skips_detection(astronaut_png, tmp_path, monkeypatch):
    def no_detection(image):
        raise AssertionError("detection should be skipped")

    monkeypatch.setattr(avatar_mod, "detect_face", no_detection)
    a = prepare_avatar(astronaut_png, tmp_path, face_box=(180, 60, 100, 110), fps=10)
    check_shapes(a, 40, 512, 512)
    y1, y2, x1, x2 = (int(v) for v in a.boxes[0])
    # The box covers the given one at every phase of the breath, plus the 10 px chin pad.
    assert x1 <= 180 and y1 <= 60 and x2 >= 280 and y2 >= 180
    assert x1 >= 175 and y1 >= 55 and x2 <= 285 and y2 <= 185


def test_bad_face_box_is_rejected(astronaut_png, tmp_path):
    with pytest.raises(AvatarError, match="leaves the 512x512 image"):
        prepare_avatar(astronaut_png, tmp_path, face_box=(400, 400, 200, 200))
    with pytest.raises(AvatarError, match="positive"):
        prepare_avatar(astronaut_png, tmp_path, face_box=(10, 10, 0, 50))
    with pytest.raises(AvatarError, match="four"):
        prepare_avatar(astronaut_png, tmp_path, face_box=(10, 10, 50))  # type: ignore[arg-type]


def test_no_face_raises_a_clear_error(gray_png, tmp_path):
    with pytest.raises(AvatarError, match=r"no face found in gray\.png \(1 frame searched\)"):
        prepare_avatar(gray_png, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_unreadable_files_raise(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image, nor a video")
    with pytest.raises(AvatarError, match="cannot read"):
        prepare_avatar(junk, tmp_path / "cache")
    with pytest.raises(AvatarError, match="no such file"):
        prepare_avatar(tmp_path / "missing.png", tmp_path / "cache")


def test_load_avatar_names_the_broken_file(astronaut_png, tmp_path):
    a = prepare_avatar(astronaut_png, tmp_path, fps=5)
    (a.folder / "faces.npy").write_bytes(b"garbage")
    with pytest.raises(AvatarError, match=r"faces\.npy is broken"):
        load_avatar(a.folder)
    (a.folder / "boxes.npy").unlink()
    with pytest.raises(AvatarError, match=r"boxes\.npy is missing"):
        load_avatar(a.folder)
    (a.folder / "avatar.json").unlink()
    with pytest.raises(AvatarError, match=r"avatar\.json is missing"):
        load_avatar(a.folder)
    with pytest.raises(AvatarError, match="does not exist"):
        load_avatar(tmp_path / "nowhere")
    # A broken cache entry is prepared again rather than trusted.
    again = prepare_avatar(astronaut_png, tmp_path, fps=5)
    assert again.key == a.key and len(load_avatar(again.folder).frames) == 20


def test_smooth_boxes_matches_the_official_windows():
    boxes = np.array([[0, 0, 0, 0], [10] * 4, [20] * 4, [30] * 4, [40] * 4, [50] * 4], float)
    out = smooth_boxes(boxes, 3)
    assert out[0, 0] == pytest.approx(10)  # mean of 0, 10, 20
    assert out[3, 0] == pytest.approx(40)  # mean of 30, 40, 50
    # Tail: the last T boxes, the first of them already smoothed (in place, like the original).
    assert out[4, 0] == pytest.approx((40 + 40 + 50) / 3)
    assert smooth_boxes(boxes[:2], 5)[0, 0] == pytest.approx(5)  # short input: whole sequence


def test_video_is_ping_ponged_with_boxes_that_follow_the_face(tmp_path):
    video = tmp_path / "shift.mp4"
    write_shifting_video(video, frames=20, shift=3)
    a = prepare_avatar(video, tmp_path / "cache")
    # 20 decoded frames, stored once, played forward then backward without repeating the
    # ends: a loop of 2 * 20 - 2 positions.
    check_shapes(a, 20, 512, 512, loop=38)
    assert list(a.loop) == [*range(20), *range(18, 0, -1)]
    played = [a.frames[i] for i in a.loop]
    steps = [mean_diff(played[i], played[i + 1]) for i in range(37)]
    assert mean_diff(played[37], played[0]) <= max(steps) + 1e-9  # no jump at the loop
    forward_x = a.boxes[:20, 2].astype(float)
    assert np.all(np.diff(forward_x) >= 0)  # the box only moves the way the face does
    slope = np.polyfit(np.arange(20), forward_x, 1)[0]
    assert 2.0 < slope < 4.0  # about 3 px per frame
    # Wav2Lip's forward window (box i = mean of detections i..i+4) runs ~2 frames ahead of the
    # face and the tail lags, but the box stays within a few pixels of where the face is.
    face_x = avatar_mod.detect_face(skimage_data.astronaut())[0] + 3 * np.arange(20)
    assert np.abs(forward_x - face_x).max() <= 9
    assert overlap(a.boxes[0], KNOWN_FACE) > 0.9


def test_video_frames_without_a_face_reuse_the_nearest_box(tmp_path, monkeypatch):
    video = tmp_path / "shift.mp4"
    write_shifting_video(video, frames=6, shift=3)
    real = avatar_mod.detect_face
    calls = iter(range(100))

    def flaky(image):
        return real(image) if next(calls) in (2, 3) else None  # only frames 2 and 3 have a face

    monkeypatch.setattr(avatar_mod, "detect_face", flaky)
    a = prepare_avatar(video, tmp_path / "cache", smooth_window=1)
    check_shapes(a, 6, 512, 512, loop=10)
    assert a.boxes[2, 2] > a.boxes[0, 2] or a.boxes[3, 2] > a.boxes[2, 2]  # the face moved
    assert (a.boxes[:3] == a.boxes[2]).all() and (a.boxes[3:6] == a.boxes[3]).all()
    monkeypatch.setattr(avatar_mod, "detect_face", lambda image: None)
    with pytest.raises(AvatarError, match=r"no face found in shift\.mp4 \(6 frames searched\)"):
        prepare_avatar(video, tmp_path / "cache2")


def test_video_is_resampled_to_the_stream_rate(tmp_path):
    video = tmp_path / "shift.mp4"
    write_shifting_video(video, frames=20, shift=3)  # 0.8 s at 25 fps
    a = prepare_avatar(video, tmp_path / "cache", fps=10, max_frames=5)
    check_shapes(a, 5, 512, 512, loop=2 * 5 - 2)  # max_frames counts frames at the stream rate
    b = prepare_avatar(video, tmp_path / "cache", fps=10)
    assert len(b.frames) == 8 and len(b.loop) == 2 * 8 - 2  # 0.8 s at 10 fps


def test_cli_prepares_and_reports(astronaut_png, gray_png, tmp_path):
    cmd = [sys.executable, "-m", "streambot", "avatar", "prepare"]
    ok = subprocess.run(
        [*cmd, str(astronaut_png), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    folder = next(tmp_path.iterdir())
    assert str(folder) in ok.stdout
    assert "face box" in ok.stdout and "frames: 100 at 25 fps" in ok.stdout
    bad = subprocess.run(
        [*cmd, str(gray_png), "--out", str(tmp_path / "gray")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "no face found in gray.png" in bad.stderr


def test_prepare_for_output_prepares_only_the_size_shown(astronaut_png, tmp_path):
    from streambot.face.wav2lip import prepare_for_output

    a = prepare_for_output(astronaut_png, tmp_path, 1280, 720, fps=25)
    assert a.frames.shape[1:3] == (720, 720)  # the 512x512 photo fitted to the stream's height
    assert [p.name for p in tmp_path.iterdir()] == [a.key]  # no full-size copy beside it
    assert source_size(astronaut_png) == (512, 512)
    with pytest.raises(AvatarError, match="no such file"):
        prepare_for_output(tmp_path / "missing.jpg", tmp_path, 1280, 720)


def test_cli_prepares_what_the_daemon_will_load(astronaut_png, tmp_path, monkeypatch):
    from streambot.face.wav2lip import prepare_for_output

    config = tmp_path / "config.toml"
    cache = tmp_path / "avatars"
    config.write_text(
        f'[stream]\nwidth = 640\nheight = 360\n[face.wav2lip]\navatar_cache = "{cache}"\n'
    )
    cmd = [sys.executable, "-m", "streambot", "avatar", "prepare", str(astronaut_png)]
    done = subprocess.run(
        [*cmd, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "360x360" in done.stdout

    def no_detection(image):
        raise AssertionError("the daemon prepared the avatar again")

    # The daemon's own call (face/factory.py) with that config's values finds it ready.
    monkeypatch.setattr(avatar_mod, "detect_face", no_detection)
    live = prepare_for_output(astronaut_png, cache, 640, 360, face_box=None, pads=(0, 10, 0, 0))
    assert str(live.folder) in done.stdout


def test_preparing_a_video_reports_its_progress_when_not_on_a_terminal(tmp_path, caplog):
    import logging

    from streambot.progress import track

    with caplog.at_level(logging.INFO, logger="streambot.progress"):
        assert list(track(range(3), "finding the face in x.mp4", 3)) == [0, 1, 2]
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "finding the face",
        "finding the face",
    ]
    assert caplog.records[-1].getMessage().startswith("finding the face in x.mp4: 3 done")


def test_cached_only_loads_or_refuses_but_never_prepares(astronaut_png, tmp_path, caplog):
    import logging

    from streambot.face.avatar import AvatarNotPrepared

    with pytest.raises(AvatarNotPrepared, match=r"astronaut\.png is not prepared"):
        prepare_avatar(astronaut_png, tmp_path, fps=5, cached_only=True)
    assert not any(tmp_path.iterdir())
    a = prepare_avatar(astronaut_png, tmp_path, fps=5)
    assert prepare_avatar(astronaut_png, tmp_path, fps=5, cached_only=True).key == a.key
    (a.folder / "faces.npy").write_bytes(b"garbage")
    with pytest.raises(AvatarError, match=r"faces\.npy is broken") as broken:
        prepare_avatar(astronaut_png, tmp_path, fps=5, cached_only=True)
    assert not isinstance(broken.value, AvatarNotPrepared)
    # Without cached_only, a broken entry (its avatar.json still there) is prepared again.
    with caplog.at_level(logging.WARNING, logger="streambot.face.avatar"):
        again = prepare_avatar(astronaut_png, tmp_path, fps=5)
    assert "cached avatar unusable, preparing again" in caplog.text
    assert again.key == a.key and len(load_avatar(again.folder).faces) == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pads": (0, 10, 0)}, "pads must be four non-negative ints"),
        ({"pads": (0, -1, 0, 0)}, "pads must be four non-negative ints"),
        ({"fps": 0}, "must be >= 1"),
        ({"smooth_window": 0}, "must be >= 1"),
        ({"max_frames": 0}, "must be >= 1"),
        ({"img_size": 4}, "img_size >= 8"),
        ({"resize_to": (0, 720)}, "resize_to must be a positive"),
    ],
)
def test_bad_options_are_rejected_before_any_work(astronaut_png, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        prepare_avatar(astronaut_png, tmp_path, **options)
    assert not any(tmp_path.iterdir())
