"""The dashboard's cohort parts: the fleet page's "Drift by model version" table and ``/cohorts/<name>``.

Both render models from :mod:`.cohorts`; each PSI is coloured by its state (the same classes as a
device's drift state), and the chart is :func:`.charts.line_chart` over the cohort's time buckets.
"""

from __future__ import annotations

from urllib.parse import quote

from edgekit.fleet.hub.web import charts
from edgekit.fleet.hub.web.html import NONE, device_link, esc, state, table
from edgekit.fleet.hub.web.models import CohortDetailOut, CohortOut, CohortSignalOut, CohortsOut


def cohort_link(name: str) -> str:
    return f'<a href="/cohorts/{esc(quote(name, safe="@"))}">{esc(name)}</a>'


def psi_cell(signal: CohortSignalOut | None) -> str:
    if signal is None:
        return NONE
    return f'<span class="{esc(signal.state)}" title="{esc(signal.state)}">{signal.psi:.3f}</span>'


def cohort_table(found: CohortsOut) -> str:
    """One row per cohort: its devices, worst state and each signal's PSI (columns: every signal of any cohort)."""
    signals = sorted({name for c in found.cohorts for name in c.signals})
    rows = [(cohort_link(c.name), esc(len(c.devices)), state(c.state), *(psi_cell(c.signals.get(s)) for s in signals))
            for c in found.cohorts]
    note = (f'<p class="muted">PSI of the online devices\' latest drift windows summed per model version; warn from '
            f"{found.warn:g}, alert from {found.alert:g}; a signal is judged once {found.min_devices} devices have a "
            "scored window.</p>")
    return (table(("Cohort", "Devices", "Worst", *signals), rows, numeric=frozenset({1, *range(3, 3 + len(signals))}),
                  empty="no online device reports drift") + note)


def _signals(cohort: CohortOut) -> str:
    rows = [(esc(name), psi_cell(s), state(s.state), esc(s.frames), esc(len(s.devices)),
             NONE if s.p_value is None else esc(f"{s.p_value:.3g}")) for name, s in cohort.signals.items()]
    return table(("Signal", "PSI", "State", "Frames", "Devices", "p (class mix)"), rows,
                 numeric=frozenset({1, 3, 4, 5}), empty="no signal judged yet (too few devices with a scored window)")


def cohort_page(found: CohortDetailOut) -> str:
    names = sorted({name for p in found.series for name in p.psi})
    psi = {name: [(p.ts, p.psi.get(name)) for p in found.series] for name in names}
    devices = {"devices": [(p.ts, float(p.devices)) for p in found.series]}
    facts = [("Model", esc(found.model)), ("Version", esc(found.version)), ("Worst state", state(found.state)),
             ("Counted now", ", ".join(device_link(d) for d in found.devices) or NONE),
             ("Members", ", ".join(device_link(d) for d in found.members))]
    return (f"<h1>Cohort {esc(found.name)}</h1>" + table(("Cohort", "Now"), [(esc(k), v) for k, v in facts])
            + "<h2>Signals now</h2>" + _signals(found)
            + "<h2>Over time</h2>" + '<div class="charts">'
            + charts.line_chart("Cohort drift (PSI) per signal", psi, unit="PSI")
            + charts.line_chart("Devices with a heartbeat", devices, unit="per bucket") + "</div>"
            + '<p class="muted">Each point: every member\'s newest heartbeat in the time bucket, windows summed per '
              "signal and scored as the cohort alert is.</p>")
