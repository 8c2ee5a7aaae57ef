"""The dashboard in a real headless Chromium: what a person would see on the fleet page, a device page
and the events page, with screenshots kept as test artifacts.

The app runs in uvicorn on a free port; Chromium loads each page with ``--dump-dom`` (the DOM
after it rendered) and ``--screenshot``. Screenshots go to the test's ``tmp_path`` (printed) and,
when ``EDGEKIT_ARTIFACTS`` is set, are copied there. Without Chromium the test skips with the
reason, except under ``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.fleet.hub.store import store_from_url
from edgekit.fleet.hub.web import create_app
from tests.edgekit.test_hub_web import EVIL, cohort_messages, seed
from tests.support.asgi_server import serving
from tests.support.tools import find_tool, unavailable

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    return find_tool(None, *BROWSERS) or unavailable(
        "headless Chromium not found (apt-get install chromium, or scripts/setup.sh)")


def browse(url: str, *args: str) -> str:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", "--window-size=1280,900", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\ndashboard screenshots: {folder}")
    yield folder
    target = os.environ.get("EDGEKIT_ARTIFACTS")
    if target:
        shutil.copytree(folder, Path(target) / "dashboard", dirs_exist_ok=True)
        print(f"dashboard screenshots copied to {Path(target) / 'dashboard'}")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chromium()
    store = store_from_url(tmp_path_factory.mktemp("hub") / "hub.db")
    with store, serving(create_app(seed(store))) as url:
        yield url


@pytest.fixture(scope="module")
def cohort_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two devices of one model version whose drift windows shift together (tests/edgekit/test_hub_web.py)."""
    chromium()
    store = store_from_url(tmp_path_factory.mktemp("hub-cohort") / "hub.db")
    store.ingest(cohort_messages())
    with store, serving(create_app(store)) as url:
        yield url


def look(url: str, artifacts: Path, name: str) -> str:
    """The page's DOM as Chromium rendered it, with a screenshot saved as ``name``.png."""
    shot = artifacts / f"{name}.png"
    browse(url, f"--screenshot={shot}")
    assert shot.stat().st_size > 5000, f"{shot} is suspiciously small"
    return browse(url, "--dump-dom")


def rows(dom: str) -> list[str]:
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_fleet_page_shows_every_device_in_a_row(base: str, artifacts: Path) -> None:
    dom = look(f"{base}/", artifacts, "fleet")
    table = rows(dom)
    assert len(table) == 2
    assert ">cam-01</a>" in table[0] and "online" in table[0] and "tiny 1 (fp32)" in table[0]
    assert 'class="alert">alert<' in table[0]  # its drift state
    assert ">cam-02</a>" in table[1] and "offline" in table[1]
    missing = [re.findall(r'<td class="num">([^<]*)</td>', row)[-1] for row in table]  # the last column
    assert missing == ["1", "0"]  # cam-01's seq 46, counted on this very request


def test_a_device_page_draws_its_charts_and_the_alert_thumbnail(base: str, artifacts: Path) -> None:
    dom = look(f"{base}/devices/cam-01", artifacts, "device-cam-01")
    charts = re.findall(r'<svg class="chart".*?</svg>', dom, re.S)
    assert len(charts) == 4
    for chart in charts:
        assert re.search(r'<polyline[^>]+points="[\d.]+,[\d.]+ [\d.]+,[\d.]+', chart), chart[:200]
    assert 'aria-label="Drift score (PSI) per signal"' in dom and ">brightness</text>" in dom
    assert ">person</text>" in dom and ">car</text>" in dom  # detections per class, one line each
    assert '<img src="data:image/jpeg;base64,' in dom and 'stroke="#ff3b30"' in dom  # the thumbnail and its box
    assert "person 0.91" in dom


def test_the_events_page_lists_the_alert_and_filters(base: str, artifacts: Path) -> None:
    dom = look(f"{base}/events?kind=alert", artifacts, "events-alert")
    [row] = rows(dom)
    assert ">cam-01</a>" in row and 'class="alert">alert<' in row and EVIL not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    everything = rows(look(f"{base}/events", artifacts, "events"))
    assert len(everything) == 2
    alerts = rows(look(f"{base}/alerts", artifacts, "alerts"))
    assert [("drift" in r, "rule" in r) for r in alerts] == [(True, False), (False, True)]


def test_the_fleet_page_shows_drift_by_model_version_and_its_cohort_page_a_chart(cohort_base: str,
                                                                              artifacts: Path) -> None:
    dom = look(f"{cohort_base}/", artifacts, "fleet-cohorts")
    assert "<h2>Drift by model version</h2>" in dom
    [row] = rows(dom.split("<h2>Drift by model version</h2>", 1)[1])
    assert ">tiny@2</a>" in row and 'class="alert">alert<' in row  # the cohort, its worst state
    assert re.search(r'class="alert" title="alert">0\.\d{3}<', row) and 'class="ok" title="ok">0.000<' in row
    cohort = look(f"{cohort_base}/cohorts/tiny@2", artifacts, "cohort-tiny-2")
    [chart] = re.findall(r'<svg class="chart" role="img" aria-label="Cohort drift.*?</svg>', cohort, re.S)
    assert re.search(r'<polyline[^>]+points="[\d.]+,[\d.]+ [\d.]+,[\d.]+', chart) and ">brightness</text>" in chart
