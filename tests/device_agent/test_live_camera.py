"""Live cameras never end: a real HTTP MJPEG camera (tests/support/live_camera.py) stalls, drops and comes back.

The camera is read by the real ``url`` source (OpenCV's FFmpeg backend), the runner in this
process for 100 fast cycles, the agent as a real process with the default timeouts for a few.
Each test prints what it measured (run with ``-s``); ``benchmarks/live_camera.py`` runs the
same cycles for longer and writes JSON.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_agent.errors import SourceError, SourceStoppedError
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from device_agent.sources import SourceRunner, SourceSpec, SourceState, open_source
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.device_agent.test_agent import write_config
from tests.support.live_camera import LiveCamera, StateLog, proc_figures, runner_cycles, wait_new_frame
from tests.support.mqtt_broker import Broker, Collector
from tests.support.tinymodels import tiny_classifier

pytestmark = pytest.mark.slow

# Growth allowed between the figures after the warm-up cycles and those at the end: a leak of
# one descriptor or thread per reconnect would show as ~100 over 100 cycles.
FD_SLACK, THREAD_SLACK, RSS_SLACK_MB = 2, 2, 16.0


@pytest.fixture
def camera() -> Iterator[LiveCamera]:
    with LiveCamera(fps=25) as cam:
        yield cam


def test_runner_rides_out_100_stall_drop_return_cycles_without_growing(camera: LiveCamera) -> None:
    log = StateLog()
    # Short limits so 100 cycles take about a minute; the defaults are timed against the agent below.
    runner = SourceRunner(camera.url, name="cam", stall_after_s=0.25, read_timeout_s=0.5, backoff_initial_s=0.02,
                          backoff_max_s=0.1, on_state=log).start()
    started = time.monotonic()
    try:
        figures = runner_cycles(runner, camera, log, cycles=100, warmup=5)
    finally:
        runner.stop(timeout=2.0)
    summary = figures.summary()
    print(f"\nrunner, 100 cycles in {time.monotonic() - started:.0f} s: {json.dumps(summary)}")
    assert figures.cycles == 100, f"stopped after {figures.cycles} cycles: {summary}"
    assert not figures.ended and all(c.new is not SourceState.STOPPED for _, c in log.changes[:-1])
    assert max(figures.detect_s) < 0.25 + 0.5, summary  # the watchdog, not the read timeout, saw each stall
    assert max(figures.drop_detect_s) < 0.5, summary  # a dropped connection fails its read at once
    assert max(figures.recover_s) < 10.0, summary
    assert figures.reconnects >= 100
    before, after = figures.before, figures.after
    assert after["fds"] <= before["fds"] + FD_SLACK, summary
    assert after["threads"] <= before["threads"] + THREAD_SLACK, summary
    assert after["rss_mb"] <= before["rss_mb"] + RSS_SLACK_MB, summary


def test_ffmpeg_honours_the_open_and_read_timeouts_of_a_stalled_http_stream(camera: LiveCamera) -> None:
    """The url source's CAP_PROP_OPEN/READ_TIMEOUT_MSEC reach FFmpeg's HTTP reads: a stalled
    camera returns the blocked call after the timeout instead of holding its thread forever."""
    backend = open_source(SourceSpec(camera.url, open_timeout_s=1.0, read_timeout_s=1.0))
    backend.open()
    try:
        assert backend.read() is not None
        camera.stall()
        started = time.monotonic()
        assert backend.read() is None  # the read timed out
        read_s = time.monotonic() - started
    finally:
        backend.close()
    started = time.monotonic()
    with pytest.raises(SourceError, match="could not open"):
        open_source(SourceSpec(camera.url, open_timeout_s=1.0, read_timeout_s=1.0)).open()  # no HTTP answer
    open_s = time.monotonic() - started
    print(f"\nstalled HTTP MJPEG: read gave up after {read_s:.2f} s, open after {open_s:.2f} s (timeouts 1 s)")
    assert 0.8 < read_s < 2.0 and 0.8 < open_s < 2.0


def test_a_camera_stalled_for_good_leaves_no_connection_threads_behind(camera: LiveCamera) -> None:
    log = StateLog()
    runner = SourceRunner(camera.url, name="cam", stall_after_s=0.25, read_timeout_s=0.5, backoff_initial_s=0.02,
                          backoff_max_s=0.1, on_state=log).start()
    try:
        assert runner.frames.get(timeout=5.0) is not None
        fds_streaming = proc_figures()["fds"]
        camera.stall()  # for good: every connection, old and new, hears nothing
        alive, deadline = [], time.monotonic() + 4.0
        while time.monotonic() < deadline:
            alive.append(sum(t.name.startswith("source-cam-conn") for t in threading.enumerate()))
            time.sleep(0.05)
        attempts = [c.attempt for _, c in log.changes if c.new is SourceState.RECONNECTING]
        assert runner.state is not SourceState.STOPPED
    finally:
        runner.stop(timeout=2.0)
    deadline = time.monotonic() + 3.0  # the last abandoned open or read gives up after its 0.5 s timeout
    while (left := [t.name for t in threading.enumerate() if t.name.startswith("source-cam-conn")]) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"\nstalled for good, 4 s: {len(attempts)} reconnects, at most {max(alive)} connection threads at once, "
          f"{len(left)} left after stop")
    assert len(attempts) >= 4 and attempts == sorted(attempts)
    assert max(alive) <= 3  # each abandoned connection ends at its timeout: they never pile up
    assert not left
    camera.drop()  # closes the held sockets: the descriptors must be back to the streaming count or below
    time.sleep(0.2)
    assert proc_figures()["fds"] <= fds_streaming


# -- the agent process, default timeouts -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real classifier (tests/support/tinymodels.py) as `edgekit optimize` bundles it: seconds, not minutes."""
    work = tmp_path_factory.mktemp("tiny")
    samples.write_image_folder(work / "calib", count=16, max_side_px=96)
    return optimize(tiny_classifier(work / "tiny.onnx", size=32), target="x86-cpu", output=work / "bundle",
                    precision="fp32", calib=work / "calib", max_drop=100).bundle


def spawn(config: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """The agent as systemd runs it; its log goes to a file, so a full pipe can never block it."""
    with log_file.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "device_agent.cli", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT)


def camera_events(collector: Collector, to: str) -> list[dict]:  # type: ignore[type-arg]
    return [b for b in collector.received("/events") if b.get("kind") == "camera" and b.get("to") == to]


def first_result_after(collector: Collector, wall_time: float, timeout: float) -> float | None:
    """Capture time (wall clock) of the first result of a frame captured after ``wall_time``."""
    found: list[float] = []

    def seen(c: Collector) -> bool:
        found[:] = [b["frame"]["ts"] for b in c.received("/results") if b["frame"]["ts"] > wall_time]
        return bool(found)

    return min(found) if collector.wait_for(seen, timeout) else None


def stop_agent(agent: subprocess.Popen[bytes], log_file: Path) -> int:
    agent.send_signal(signal.SIGTERM)
    try:
        return agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        raise AssertionError(f"the agent did not stop on SIGTERM:\n{log_file.read_text()[-3000:]}") from None


def test_agent_process_rides_out_stall_drop_return_with_default_timeouts(
    tiny_bundle: Path, camera: LiveCamera, broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(broker)
    log_file = tmp_path / "agent.log"
    agent = spawn(write_config(tmp_path, tiny_bundle, camera.url, broker), log_file)  # default stall and read timeouts
    detect, recover, figures = [], [], []
    try:
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 5, timeout=60), log_file.read_text()[-3000:]
        for _ in range(3):
            # Stream past the stall limit first, so the next reconnect starts the backoff at attempt 1
            # again (a camera that flaps faster than that is backed off further on purpose).
            time.sleep(3.2)
            figures.append(proc_figures(agent.pid))
            stalls = len(camera_events(collector, "stalled"))
            camera.stall()
            # wait_for calls the lambda before the loop moves on, so the late-bound `stalls` is this round's
            assert collector.wait_for(lambda c: len(camera_events(c, "stalled")) > stalls, timeout=10)  # noqa: B023
            detect.append(time.monotonic() - camera.last_frame_at)  # as seen on the broker: an upper bound
            camera.drop()
            time.sleep(0.5)  # connection refused meanwhile
            back = time.time()
            camera.serve()
            captured = first_result_after(collector, back, timeout=15)
            assert captured is not None, log_file.read_text()[-3000:]
            recover.append(captured - back)
            assert agent.poll() is None, log_file.read_text()[-3000:]
        time.sleep(0.5)
        figures.append(proc_figures(agent.pid))
    finally:
        code = stop_agent(agent, log_file)
        collector.close()
    print(f"\nagent, default timeouts, {len(detect)} cycles: stall seen on the broker after "
          f"{[round(d, 2) for d in detect]} s, results again {[round(r, 2) for r in recover]} s after the camera "
          f"returned; process {figures[0]} after the first stream, {figures[-1]} at the end")
    assert code == 0  # SIGTERM is a clean stop
    assert max(detect) < 5.0 and max(recover) < 10.0
    assert figures[-1]["fds"] <= figures[0]["fds"] + FD_SLACK, figures
    assert figures[-1]["threads"] <= figures[0]["threads"] + THREAD_SLACK, figures
    assert figures[-1]["rss_mb"] <= figures[0]["rss_mb"] + RSS_SLACK_MB, figures


def test_agent_keeps_retrying_a_camera_that_is_gone_for_good(
    tiny_bundle: Path, camera: LiveCamera, broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(broker)
    log_file = tmp_path / "agent.log"
    agent = spawn(write_config(tmp_path, tiny_bundle, camera.url, broker), log_file)
    try:
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 3, timeout=60), log_file.read_text()[-3000:]
        camera.drop()  # for good: connections refused from now on
        time.sleep(8.0)
        assert agent.poll() is None, f"the agent exited ({agent.returncode}):\n{log_file.read_text()[-3000:]}"
        assert collector.wait_for(lambda c: len(camera_events(c, "reconnecting")) >= 4, timeout=5)
    finally:
        code = stop_agent(agent, log_file)
        collector.close()
    attempts = [b["attempt"] for b in camera_events(collector, "reconnecting")]
    print(f"\nagent, camera gone for 8 s: reconnect attempts published {attempts}")
    assert attempts == list(range(1, len(attempts) + 1)), attempts  # numbered, growing, never starting over
    assert all(b["reason"] == "stopped" for b in camera_events(collector, "stopped"))  # by SIGTERM, never by itself
    assert code == 0


def test_agent_run_fails_when_a_live_source_stops_without_an_end(
    tiny_bundle: Path, camera: LiveCamera, broker: Broker, tmp_path: Path
) -> None:
    """STOPPED without an end can only mean the source's supervisor died: exit non-zero, to be restarted."""
    agent = Agent(load_config(write_config(tmp_path, tiny_bundle, camera.url, broker)))
    threading.Timer(2.0, agent.sources[0].stop).start()  # as if its supervisor had died
    with pytest.raises(SourceStoppedError, match="source-0 stopped without reaching the end of a finite stream"):
        agent.run(flush_timeout_s=1.0)
    assert agent.frames_done > 0


def test_a_camera_back_after_a_long_outage_streams_again_within_10_s_with_the_defaults(camera: LiveCamera) -> None:
    """The backoff doubles while the camera is away; its default cap (5 s) is what bounds recovery."""
    log = StateLog()
    runner = SourceRunner(camera.url, name="cam", on_state=log).start()  # every limit at its default
    try:
        assert wait_new_frame(runner, time.monotonic(), 10.0) is not None
        camera.drop()
        time.sleep(16.0)  # long enough for the backoff to reach its cap (0.5, 1, 2, 4, 5, 5 s ...)
        attempts = [c.attempt for _, c in log.changes if c.new is SourceState.RECONNECTING]
        assert max(attempts) >= 5, attempts
        assert max(c.retry_in_s or 0.0 for _, c in log.changes) <= 5.0
        back = time.monotonic()
        camera.serve()
        captured = wait_new_frame(runner, back, 15.0)
        assert captured is not None, "no frame within 15 s of the camera's return"
        print(f"\nafter a 16 s outage ({max(attempts)} attempts): streaming again {captured - back:.2f} s after return")
        assert captured - back < 10.0
        assert runner.state is SourceState.STREAMING or log.wait(SourceState.STREAMING, after=0, timeout=1.0)
    finally:
        runner.stop(timeout=2.0)



def test_a_camera_that_stays_away_is_not_logged_at_every_attempt(camera: LiveCamera,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Every attempt is an event; the journal gets the first failure and a thinning reminder (2, 4, 8 ...)."""
    caplog.set_level(logging.DEBUG, logger="device_agent.sources.runner")
    log = StateLog()
    runner = SourceRunner(camera.url, name="cam", backoff_initial_s=0.05, backoff_max_s=0.05, on_state=log).start()
    try:
        assert wait_new_frame(runner, time.monotonic(), 10.0) is not None
        camera.drop()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and sum(c.new is SourceState.RECONNECTING for _, c in log.changes) < 20:
            time.sleep(0.05)
    finally:
        runner.stop(timeout=2.0)
    attempts = [c.attempt for _, c in log.changes if c.new is SourceState.RECONNECTING]
    assert len(attempts) >= 20
    warned = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and "RECONNECTING" in r.getMessage()]
    logged_attempts = [int(m.split("attempt ")[1].split(",")[0]) for m in warned]
    assert logged_attempts[:5] == [1, 2, 4, 8, 16], warned
    assert all(a & (a - 1) == 0 for a in logged_attempts)  # only powers of two once the reason repeats
