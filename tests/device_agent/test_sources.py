"""Camera sources on real video files, real image folders and real (dead or silent) network peers."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from device_agent.errors import SourceError, SourceStateError
from device_agent.sources import (
    ALLOWED_TRANSITIONS,
    Frame,
    LatestFrame,
    SourceRunner,
    SourceSpec,
    SourceState,
    StateChange,
    open_source,
    register_source,
    source_kind,
    transition,
)
from edgekit.content import samples

S = SourceState
SIZE_WH = (160, 120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s at 10 fps: 10 real frames."""
    return samples.write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1, fps=10, size_wh=SIZE_WH)


@pytest.fixture(scope="module")
def clip20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s at 20 fps: 20 real frames."""
    return samples.write_video(tmp_path_factory.mktemp("clip20") / "clip20.mp4", seconds=1, fps=20, size_wh=SIZE_WH)


class Events:
    """Collects state changes from the runner's thread."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []

    def __call__(self, change: StateChange) -> None:
        self.changes.append(change)

    def states(self) -> list[SourceState]:
        return [c.new for c in list(self.changes)]

    def reconnects(self) -> list[StateChange]:
        return [c for c in list(self.changes) if c.new is S.RECONNECTING]


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def runners() -> Iterator[list[SourceRunner]]:
    """Runners made in a test; all stopped at its end even when it fails."""
    made: list[SourceRunner] = []
    yield made
    for runner in made:
        runner.stop(timeout=2.0)


def make(runners: list[SourceRunner], uri: str | Path, **kw) -> tuple[SourceRunner, Events]:  # type: ignore[no-untyped-def]
    events = Events()
    runner = SourceRunner(str(uri), name=kw.pop("name", "cam"), on_state=events, **kw)
    runners.append(runner)
    return runner, events


def drain(runner: SourceRunner, timeout: float = 5.0) -> list:  # type: ignore[type-arg]
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = runner.frames.get(timeout=0.05)
        if frame is not None:
            got.append(frame)
        elif runner.state is S.STOPPED:
            break
    return got


# -- states and the registry -------------------------------------------------------------------


def test_state_table_refuses_illegal_transitions() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(SourceState)
    assert transition(S.STARTING, S.STREAMING) is S.STREAMING
    assert transition(S.RECONNECTING, S.RECONNECTING) is S.RECONNECTING
    with pytest.raises(SourceStateError, match="STOPPED -> STREAMING"):
        transition(S.STOPPED, S.STREAMING)
    with pytest.raises(SourceStateError, match="STARTING -> STALLED.*allowed: RECONNECTING, STOPPED, STREAMING"):
        transition(S.STARTING, S.STALLED)


def test_uri_picks_the_kind(clip: Path, tmp_path: Path) -> None:
    assert source_kind("0") == "camera"
    assert source_kind("/dev/video2") == "v4l2"
    assert source_kind("rtsp://10.0.0.5:554/live") == "url"
    assert source_kind("https://example.org/cam.mjpg") == "url"
    assert source_kind("videotestsrc ! videoconvert ! appsink") == "gstreamer"
    assert source_kind(str(clip)) == "video-file"
    assert source_kind(f"file://{clip}") == "video-file"
    assert source_kind(str(tmp_path)) == "image-folder"


def test_unknown_uri_and_missing_paths_name_the_uri_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"'ftp://host/x'.*unsupported scheme 'ftp://'.*expected a camera index"):
        source_kind("ftp://host/x")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(SourceError, match=rf"{missing}.*no such folder; expected an existing folder of images"):
        open_source(str(missing))
    with pytest.raises(SourceError, match=r"no such file; expected an existing video file"):
        SourceRunner(str(tmp_path / "gone.mp4"), name="x")
    with pytest.raises(SourceError, match=r"unknown source kind 'nope'.*known kinds: camera"):
        open_source(SourceSpec("0", kind="nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"holds no images; expected files ending in"):
        open_source(str(tmp_path / "empty")).open()


def test_gstreamer_without_gstreamer_build_says_what_to_install() -> None:
    if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="needs an OpenCV built with GStreamer"):
        open_source("videotestsrc num-buffers=1 ! appsink").open()


# -- files and folders -----------------------------------------------------------------------


def test_short_file_streams_then_stops_at_end_of_stream(runners: list[SourceRunner], clip: Path) -> None:
    runner, events = make(runners, clip)
    runner.start()
    frames = drain(runner)
    assert runner.state is S.STOPPED
    assert runner.ended  # a finite source's end: the one way a runner stops by itself
    assert events.states() == [S.STREAMING, S.STOPPED]
    assert [(c.old, c.new) for c in events.changes] == [(S.STARTING, S.STREAMING), (S.STREAMING, S.STOPPED)]
    assert events.changes[-1].reason == "end of stream"
    assert frames, "a consumer polling every 50 ms must see frames"
    ids = [f.frame_id for f in frames]
    assert ids == sorted(set(ids)) and ids[-1] == 9
    assert [f.captured_ns for f in frames] == sorted(f.captured_ns for f in frames)
    first = frames[0]
    assert first.image.shape == (120, 160, 3) and first.image.dtype == np.uint8 and first.source == "cam"
    assert runner.stats()["frames_read"] == 10 and runner.stats()["reconnects"] == 0
    assert runner.stop(timeout=1.0)


def test_fps_paces_a_file_in_real_time(runners: list[SourceRunner], clip20: Path) -> None:
    runner, _events = make(runners, clip20, fps=20)
    start = time.monotonic()
    runner.start()
    assert wait_for(lambda: runner.state is S.STOPPED, timeout=5.0)
    elapsed = time.monotonic() - start
    assert runner.stats()["frames_read"] == 20
    assert 0.7 <= elapsed <= 3.0, f"20 frames at 20 fps took {elapsed:.2f} s"


def test_loop_keeps_going_past_the_end_of_the_file(runners: list[SourceRunner], clip: Path) -> None:
    runner, events = make(runners, clip, loop=True, fps=100)
    runner.start()
    assert wait_for(lambda: runner.stats()["frames_read"] >= 35, timeout=5.0)
    assert runner.state is S.STREAMING
    assert runner.stop(timeout=2.0)
    assert events.states() == [S.STREAMING, S.STOPPED]
    assert events.changes[-1].reason == "stopped"


def test_slow_consumer_gets_the_newest_frame_and_drops_counted(runners: list[SourceRunner], clip: Path) -> None:
    runner, _ = make(runners, clip, loop=True, fps=200)
    runner.start()
    seen = []
    for _ in range(8):
        frame = runner.frames.get(timeout=2.0)
        assert frame is not None
        seen.append(frame.frame_id)
        time.sleep(0.05)  # inference slower than the source
    assert all(b > a for a, b in zip(seen, seen[1:])), seen  # noqa: RUF007  (assertions kept as written)
    assert any(b - a > 1 for a, b in zip(seen, seen[1:])), seen  # noqa: RUF007
    assert runner.stats()["frames_dropped"] > 0


def test_a_file_without_fps_follows_a_slow_consumer_frame_by_frame(runners: list[SourceRunner], clip: Path) -> None:
    runner, _events = make(runners, clip, follow_consumer=True)
    runner.start()
    seen = []
    while (frame := runner.frames.get(timeout=3.0)) is not None:
        seen.append(frame.frame_id)
        time.sleep(0.02)  # inference slower than decoding: the file waits, nothing is skipped
        if runner.state is S.STOPPED and runner.frames.peek() is frame:
            break
    total = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert seen == list(range(seen[0], seen[0] + total))
    assert runner.stats()["frames_dropped"] == 0


def test_latest_frame_slot() -> None:
    slot = LatestFrame()
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(3):
        slot.put(Frame(i, "s", time.monotonic_ns(), time.time(), image))
    got = slot.get(timeout=0.1)
    assert got is not None and got.frame_id == 2 and slot.dropped == 2
    assert slot.get(timeout=0.05) is None  # nothing unseen
    slot.close()
    start = time.monotonic()
    assert slot.get(timeout=5.0) is None and time.monotonic() - start < 0.5


def test_image_folder_is_a_finite_source_and_skips_unreadable_files(runners: list[SourceRunner],
                                                                     tmp_path: Path) -> None:
    samples.write_image_folder(tmp_path, count=5, max_side_px=200)
    (tmp_path / "zz_half_written.jpg").write_bytes(b"\xff\xd8\xff garbage")
    runner, events = make(runners, tmp_path)
    runner.start()
    frames = drain(runner)
    assert events.states() == [S.STREAMING, S.STOPPED] and events.changes[-1].reason == "end of stream"
    assert runner.stats()["frames_read"] == 5
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 for f in frames)


# -- faults ----------------------------------------------------------------------------------


def test_deleted_file_mid_stream_reconnects_with_backoff_and_stops_cleanly(
    runners: list[SourceRunner], clip: Path, tmp_path: Path
) -> None:
    path = Path(shutil.copy(clip, tmp_path / clip.name))
    runner, events = make(runners, path, loop=True, fps=50, backoff_initial_s=0.05, backoff_max_s=0.4)
    runner.start()
    assert wait_for(lambda: runner.state is S.STREAMING, timeout=3.0)
    path.unlink()
    assert wait_for(lambda: len(events.reconnects()) >= 3, timeout=5.0), events.changes
    attempts = events.reconnects()
    assert [c.attempt for c in attempts[:3]] == [1, 2, 3]
    assert attempts[0].old is S.STREAMING and "removed" in attempts[0].reason
    assert "does not exist" in attempts[1].reason
    start = time.monotonic()
    assert runner.stop(timeout=2.0)
    assert time.monotonic() - start < 2.0 and runner.state is S.STOPPED


def test_file_truncated_mid_stream_is_a_read_error_not_an_end(runners: list[SourceRunner], clip: Path,
                                                              tmp_path: Path) -> None:
    path = Path(shutil.copy(clip, tmp_path / clip.name))
    runner, events = make(runners, path, fps=20, backoff_initial_s=0.05)
    runner.start()
    assert wait_for(lambda: runner.state is S.STREAMING, timeout=3.0)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 3)
    assert wait_for(lambda: len(events.reconnects()) >= 2, timeout=5.0), events.changes
    assert S.STOPPED not in events.states(), "a truncated file must not look like a clean end"
    assert "truncated" in events.reconnects()[0].reason
    assert runner.stop(timeout=2.0)


def _mjpg_avi(src: Path, dst: Path) -> Path:
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 10, SIZE_WH)
    ok, image = cap.read()
    while ok:
        writer.write(image)
        ok, image = cap.read()
    cap.release()
    writer.release()
    return dst


@pytest.mark.parametrize("damage", ["half-mp4", "garbage", "half-avi"])
def test_corrupt_video_file_reconnects_and_never_hangs(
    runners: list[SourceRunner], clip: Path, tmp_path: Path, damage: str
) -> None:
    if damage == "half-avi":  # the index is at the end: it opens, decodes some frames, then fails
        whole = _mjpg_avi(clip, tmp_path / "whole.avi").read_bytes()
        path = tmp_path / "half.avi"
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "half-mp4":
        path = tmp_path / "half.mp4"
        path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    else:
        path = tmp_path / "garbage.mp4"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    runner, events = make(runners, path, backoff_initial_s=0.05, backoff_max_s=0.2)
    runner.start()
    assert wait_for(lambda: len(events.reconnects()) >= 2, timeout=5.0), events.changes
    assert S.STOPPED not in events.states()
    attempts = events.reconnects()
    assert all(c.reason.startswith(("open failed", "read failed")) for c in attempts)
    # a file that breaks after a few frames each time must still back off, not spin
    assert [c.attempt for c in attempts[:2]] == [1, 2], attempts
    if damage == "half-avi":
        assert "stopped decoding at frame" in attempts[0].reason
    assert runner.stop(timeout=2.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rtsp_on_a_closed_port_reconnects_with_growing_backoff(runners: list[SourceRunner]) -> None:
    runner, events = make(runners, f"rtsp://127.0.0.1:{_free_port()}/stream", read_timeout_s=1.0, stall_after_s=0.5,
                          backoff_initial_s=0.05, backoff_max_s=10.0)  # fmt: skip
    start = time.monotonic()
    runner.start()
    assert wait_for(lambda: len(events.reconnects()) >= 4, timeout=5.0), events.changes
    attempts = events.reconnects()
    assert [c.attempt for c in attempts[:4]] == [1, 2, 3, 4]
    delays = [c.retry_in_s for c in attempts[:4]]
    assert all(d is not None for d in delays) and delays == sorted(delays), delays
    assert S.STREAMING not in events.states() and "open failed" in attempts[0].reason
    assert runner.stop(timeout=2.0)
    assert time.monotonic() - start < 5.0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except (TimeoutError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    done.set()
    thread.join(1.0)
    for conn in held:
        conn.close()
    server.close()


def test_rtsp_server_that_never_answers_is_abandoned_and_retried(runners: list[SourceRunner],
                                                                 silent_server: int) -> None:
    runner, events = make(runners, f"rtsp://127.0.0.1:{silent_server}/stream", read_timeout_s=0.5, stall_after_s=0.3,
                          backoff_initial_s=0.1, backoff_max_s=1.0)  # fmt: skip
    start = time.monotonic()
    runner.start()
    assert wait_for(lambda: len(events.reconnects()) >= 2, timeout=5.0), events.changes
    attempts = events.reconnects()
    assert [c.attempt for c in attempts[:2]] == [1, 2]
    assert attempts[1].retry_in_s > attempts[0].retry_in_s  # type: ignore[operator]
    assert all(c.reason.startswith(("open failed", "open did not finish")) for c in attempts)
    assert runner.stop(timeout=2.0)
    assert time.monotonic() - start < 5.0


@register_source("test-freezing")
class FreezingSource:
    """Real frames from a video file, then a read that blocks like a camera that froze."""

    finite: ClassVar[bool] = False
    frames_before_freeze = 3

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.release = threading.Event()

    def open(self) -> None:
        self.cap = cv2.VideoCapture(self.spec.uri)
        self.left = self.frames_before_freeze

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            self.release.wait(5.0)
            return None
        self.left -= 1
        ok, image = self.cap.read()
        return image if ok else None

    def close(self) -> None:
        self.release.set()
        self.cap.release()


def test_watchdog_marks_a_frozen_camera_stalled_and_reconnects(runners: list[SourceRunner], clip: Path) -> None:
    runner, events = make(runners, clip, kind="test-freezing", stall_after_s=0.3, backoff_initial_s=0.05)
    runner.start()
    assert wait_for(lambda: events.states().count(S.STREAMING) >= 2, timeout=5.0), events.changes
    states = events.states()
    assert states[:4] == [S.STREAMING, S.STALLED, S.RECONNECTING, S.STREAMING], states
    stalled = events.changes[1]
    assert "no frame for" in stalled.reason and events.changes[2].attempt == 1
    assert wait_for(lambda: len(events.reconnects()) >= 2, timeout=5.0)
    assert events.reconnects()[1].attempt == 2  # froze again soon after: the backoff keeps growing
    ids = [f.frame_id for f in drain(runner, timeout=0.2)]
    assert ids == sorted(set(ids))  # ids keep increasing across the reconnect
    assert runner.stats()["reconnects"] >= 1
    assert runner.stop(timeout=2.0)


@register_source("test-ending-live")
class EndingLiveSource:
    """Real frames from a video file, then ``None`` forever: what OpenCV's read gives for a camera
    whose connection dropped or whose read timed out."""

    finite: ClassVar[bool] = False

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    def open(self) -> None:
        self.cap = cv2.VideoCapture(self.spec.uri)

    def read(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        return image if ok else None

    def close(self) -> None:
        self.cap.release()


def test_a_live_source_whose_read_gives_nothing_reconnects_and_never_ends(runners: list[SourceRunner],
                                                                          clip: Path) -> None:
    runner, events = make(runners, clip, kind="test-ending-live", backoff_initial_s=0.05, backoff_max_s=0.2)
    assert not runner.finite
    runner.start()
    assert wait_for(lambda: len(events.reconnects()) >= 3, timeout=5.0), events.changes
    assert S.STOPPED not in events.states() and not runner.ended, "a live source must never end by itself"
    assert events.states()[:2] == [S.STREAMING, S.RECONNECTING]
    assert events.reconnects()[0].reason.startswith("read failed: the live stream gave no frame")
    assert runner.stats()["frames_read"] >= 20  # it reconnected and streamed the clip again
    assert runner.stop(timeout=2.0) and runner.state is S.STOPPED and not runner.ended


def test_read_timeout_is_derived_from_the_stall_limit_and_must_exceed_it(clip: Path) -> None:
    runner = SourceRunner(str(clip), name="cam")
    assert (runner.stall_after_s, runner.read_timeout_s) == (3.0, 5.0)
    assert SourceRunner(str(clip), name="cam", stall_after_s=0.5).read_timeout_s == 2.5
    with pytest.raises(SourceError, match=r"read_timeout_s \(3 s\) must be longer than stall_after_s \(3 s\)"):
        SourceRunner(str(clip), name="cam", read_timeout_s=3.0)


def test_a_listener_that_raises_does_not_stop_the_source(runners: list[SourceRunner], clip: Path) -> None:
    def bad_listener(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    runner = SourceRunner(str(clip), name="cam", on_state=bad_listener)
    runners.append(runner)
    runner.start()
    assert wait_for(lambda: runner.state is S.STOPPED, timeout=5.0)
    assert runner.stats()["frames_read"] == 10


def test_stop_before_start_and_start_twice(clip: Path) -> None:
    runner = SourceRunner(str(clip), name="cam")
    assert runner.stop(timeout=0.1) and runner.state is S.STOPPED
    with pytest.raises(SourceError, match="already started"):
        runner.start()
