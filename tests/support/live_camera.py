"""A live HTTP MJPEG camera that a test controls: serve, stall, drop, come back, talk garbage.

It speaks what IP cameras speak (``multipart/x-mixed-replace`` JPEG frames over HTTP, read by
OpenCV through FFmpeg), with frames cut from a real photograph and JPEG-encoded by OpenCV, so
the agent's real ``url`` source reads it exactly as it would read a camera on the network:

- :meth:`stall`: every connection stays open and no byte is sent (a frozen camera or a
  network that black-holes packets); new connections are accepted and then hear nothing.
- :meth:`drop`: every connection and the listening socket are closed: connections are refused.
- :meth:`serve`: listen again on the same port (after a drop) and send frames on every
  connection again (after a stall).
- ``serve(garbage=True)``: new connections get an HTTP 200 and random bytes instead of frames.

:func:`runner_cycles` drives a :class:`SourceRunner` through such cycles and measures them;
the tests and ``benchmarks/live_camera.py`` share it.

Plain sockets, one thread per connection: a test needs exact control over when bytes stop,
which ``http.server`` hides behind buffered files.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from device_agent.sources import SourceRunner, SourceState, StateChange

BOUNDARY = "edgekitframe"


def jpeg_frames(size_wh: tuple[int, int] = (160, 120), count: int = 8) -> list[bytes]:
    """``count`` JPEGs: crops of a real photograph (scikit-image's, via edgekit's samples) panning left to right."""
    from edgekit.content import samples

    _, photo = samples.photos()[0]
    w, h = size_wh
    scale = max(w * 1.5 / photo.shape[1], h / photo.shape[0])
    big = cv2.resize(photo, (max(w, round(photo.shape[1] * scale)), max(h, round(photo.shape[0] * scale))),
                     interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        x = (big.shape[1] - w) * i // max(1, count - 1)
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(big[:h, x:x + w]), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        frames.append(jpeg.tobytes())
    return frames


class LiveCamera:
    """An MJPEG-over-HTTP camera on 127.0.0.1 at ``fps``; see the module docstring for the faults."""

    def __init__(self, *, fps: float = 25.0, size_wh: tuple[int, int] = (160, 120), port: int = 0) -> None:
        self.fps = fps
        self._frames = jpeg_frames(size_wh)
        self._lock = threading.Lock()
        self._flowing = threading.Event()  # clear while stalled: connection threads wait on it
        self._flowing.set()
        self._garbage = False
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.port = port
        self.frames_sent = 0
        self.connections = 0
        self.last_frame_at = 0.0  # time.monotonic() of the last frame sent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    # -- faults -----------------------------------------------------------------------------

    def serve(self, *, garbage: bool = False) -> LiveCamera:
        """Send frames (random bytes if ``garbage``): listen (on the same port as before, if any) and end a stall."""
        with self._lock:
            self._garbage = garbage
            if self._listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port of a drop is in TIME_WAIT
                listener.bind(("127.0.0.1", self.port))
                listener.listen(16)
                self.port = int(listener.getsockname()[1])
                self._listener = listener
                self._spawn(self._accept, listener)
        self._flowing.set()
        return self

    def stall(self) -> None:
        """Keep every socket open and stop sending: connections (old and new) hear nothing."""
        self._flowing.clear()

    def drop(self) -> None:
        """Close every connection and the listening socket: the camera is gone, connects are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
            clients, self._clients = self._clients, set()
        for sock in [*clients, *([listener] if listener is not None else [])]:
            _close(sock)
        self._flowing.set()  # wake waiting connection threads so they notice their socket is gone
        self._reap()

    def close(self) -> None:
        self._closed = True
        self.drop()
        for thread in self._threads:
            thread.join(2.0)

    def __enter__(self) -> LiveCamera:
        return self.serve()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- serving ----------------------------------------------------------------------------

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True, name="live-camera")
        thread.start()
        self._threads.append(thread)

    def _reap(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed by drop(): this accept loop ends with it
                return
            with self._lock:
                if self._listener is not listener:
                    _close(conn)
                    return
                self._clients.add(conn)
                self.connections += 1
                garbage = self._garbage
            self._spawn(self._stream, conn, garbage)

    def _stream(self, conn: socket.socket, garbage: bool) -> None:
        period = 1.0 / self.fps
        try:
            self._read_request(conn)
            self._flowing.wait()  # a connection made during a stall hears nothing, not even headers
            if garbage:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY.encode()
                             + b"\r\n\r\n")
                while conn in self._clients:
                    conn.sendall(os.urandom(4096))
                    time.sleep(period)
                return
            conn.sendall(b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n"
                         b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY.encode() + b"\r\n\r\n")
            i = 0
            while not self._closed:
                self._flowing.wait()
                if conn not in self._clients:
                    return
                jpeg = self._frames[i % len(self._frames)]
                conn.sendall(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                             + jpeg + b"\r\n")
                with self._lock:
                    self.frames_sent += 1
                    self.last_frame_at = time.monotonic()
                i += 1
                time.sleep(period)
        except OSError:  # the client went away or drop() closed the socket: this connection is over
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)
            _close(conn)

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        conn.settimeout(5.0)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                raise OSError("client closed before sending its request")
            data += chunk
        conn.settimeout(None)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on this socket, unlike close() alone
    except OSError:
        pass  # not connected (a listener, or the peer already left): close() below is enough
    sock.close()


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def proc_figures(pid: int | str = "self") -> dict[str, float]:
    """Open fds, threads and RSS (MiB) of a process, from /proc."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = rss_kb = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"fds": fds, "threads": threads, "rss_mb": round(rss_kb / 1024, 1)}


# -- cycles against a SourceRunner ------------------------------------------------------------


class StateLog:
    """``on_state`` listener that stamps each change with ``time.monotonic()`` as it arrives."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, StateChange]] = []
        self._cond = threading.Condition()

    def __call__(self, change: StateChange) -> None:
        with self._cond:
            self.changes.append((time.monotonic(), change))
            self._cond.notify_all()

    def wait(self, state: SourceState, *, after: int, timeout: float) -> float | None:
        """Monotonic time of the first change to ``state`` at index >= ``after``; None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, change in self.changes[after:]:
                    if change.new is state:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))


@dataclass
class CycleFigures:
    """What :func:`runner_cycles` measured: per-cycle times and the process before and after."""

    cycles: int = 0
    detect_s: list[float] = field(default_factory=list)  # stall: last frame sent -> STALLED
    drop_detect_s: list[float] = field(default_factory=list)  # drop while streaming: last frame sent -> RECONNECTING
    recover_s: list[float] = field(default_factory=list)  # camera back -> first new frame captured
    kinds: list[str] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)  # after the warm-up cycles
    after: dict[str, float] = field(default_factory=dict)
    reconnects: int = 0
    ended: bool = False  # the runner reached STOPPED by itself (must never happen for a live camera)

    def summary(self) -> dict[str, object]:
        def stats(values: list[float]) -> dict[str, float | None]:
            if not values:
                return {"p50": None, "max": None, "n": 0}
            arr = np.asarray(values)
            return {"p50": round(float(np.percentile(arr, 50)), 3), "max": round(float(arr.max()), 3), "n": len(values)}

        return {"cycles": self.cycles, "kinds": {k: self.kinds.count(k) for k in sorted(set(self.kinds))},
                "detect_s": stats(self.detect_s), "drop_detect_s": stats(self.drop_detect_s),
                "recover_s": stats(self.recover_s), "before": self.before,
                "after": self.after, "reconnects": self.reconnects, "ended": self.ended}


def cycle_kind(i: int) -> str:
    """The fault of cycle ``i``: mostly stall -> drop -> return; stall -> return, a drop while streaming
    (the read fails at once: the case that used to end the source) and garbage mixed in."""
    if i % 10 == 9:
        return "stall-drop-garbage-return"
    return {1: "drop-return", 3: "stall-return"}.get(i % 5, "stall-drop-return")


def wait_new_frame(runner: SourceRunner, since: float, timeout: float) -> float | None:
    """Monotonic capture time of the first frame captured after ``since``; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = runner.frames.get(timeout=0.05)
        if frame is not None and frame.captured_ns / 1e9 > since:
            return frame.captured_ns / 1e9
    return None


def _settled_figures(runner: SourceRunner) -> dict[str, float]:
    """Process figures once every abandoned connection has had its read timeout to end."""
    time.sleep(runner.read_timeout_s + 0.2)
    return proc_figures()


def runner_cycles(runner: SourceRunner, camera: LiveCamera, log: StateLog, *, cycles: int, warmup: int = 5,
                  stream_s: float = 0.1, drop_s: float = 0.1, garbage_s: float = 0.3, detect_timeout_s: float = 10.0,
                  recover_timeout_s: float = 10.0, on_cycle: Callable[[int, float, float], None] | None = None,
                  ) -> CycleFigures:
    """Stall, drop and bring back ``camera`` ``cycles`` times under a started ``runner``; measure each.

    Each cycle waits for frames, stalls the camera and times the STALLED change from the last
    frame sent (or, by :func:`cycle_kind`, drops it while streaming and times RECONNECTING);
    then drops it for ``drop_s`` (connections refused), maybe serves garbage for ``garbage_s``,
    and serves again, timing the first new frame.
    Process figures are taken after ``warmup`` cycles and at the end. Stops at the first
    cycle whose stall or recovery is not seen in time (the figures say how far it got).
    """
    figures = CycleFigures()
    for i in range(cycles):
        if i == warmup:
            figures.before = _settled_figures(runner)
        kind = cycle_kind(i)
        deadline = time.monotonic() + recover_timeout_s
        while runner.state is not SourceState.STREAMING and time.monotonic() < deadline:
            time.sleep(0.01)  # a stall only shows as STALLED once the runner has seen frames
        time.sleep(stream_s)
        mark = len(log.changes)
        if kind == "drop-return":
            camera.drop()
        else:
            camera.stall()
        seen = SourceState.RECONNECTING if kind == "drop-return" else SourceState.STALLED
        seen_at = log.wait(seen, after=mark, timeout=detect_timeout_s)
        if seen_at is None:
            break
        detect = seen_at - camera.last_frame_at
        if kind != "stall-return":
            if kind != "drop-return":
                camera.drop()
            time.sleep(drop_s)
            if kind == "stall-drop-garbage-return":
                camera.serve(garbage=True)
                time.sleep(garbage_s)
                camera.drop()
        while runner.frames.get(timeout=0) is not None:
            pass  # nothing older than the return may count as recovered
        back = time.monotonic()
        camera.serve()
        captured = wait_new_frame(runner, back, recover_timeout_s)
        if captured is None or runner.state is SourceState.STOPPED:
            break
        figures.cycles += 1
        figures.kinds.append(kind)
        (figures.drop_detect_s if kind == "drop-return" else figures.detect_s).append(detect)
        figures.recover_s.append(captured - back)
        if on_cycle is not None:
            on_cycle(i, detect, captured - back)
    figures.after = _settled_figures(runner)
    figures.reconnects = int(runner.stats()["reconnects"])
    figures.ended = runner.state is SourceState.STOPPED
    return figures
