"""The presenter's guide: a collapsed "What to look at" panel on each page, demo mode only.

It words the demo story (``flux_dashboard.simulator.story.StoryPlan``, the
embedded simulator's own plan) as the page shows it, so a presenter can walk a
customer through the incident. With masking on it uses the masked names, the
same aliases the page shows. Pages call ``ui.guide(view, "<page>")``.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.ui.state import View, masker

PAGES = ("overview", "devices", "protocols", "toxic", "remotes", "hunting")


def guide_text(plan, page: str, alias: Callable[[str, str], str] | None = None,
               range_start=None, sensor_id: int | None = None) -> list[str]:
    """The guide's sentences for ``page`` (plain text; escape before markdown).

    ``alias(kind, value)`` masks an identifier (kinds of ``Masker``); None
    shows the real ones. ``range_start`` (aware datetime): when the range
    starts after the first contact, the guide first says to widen it.
    """
    show = alias or (lambda kind, value: value)
    ws = f"{show('name', plan.workstation_name)} ({show('local_ip', plan.workstation_ip)})"
    c2 = show("public_ip", plan.c2_ip)
    server = show("name", plan.server_name)

    def d(offset: int) -> str:
        return f"{plan.day(offset):%a %d %b}".replace(" 0", " ")

    first, last, up = d(plan.first_day), d(plan.last_day), d(plan.upload_day)
    waves = " and ".join(d(o) for o in plan.bruteforce_days)
    gb = sum(plan.upload_bytes) / 1e9
    up_hours = f"{plan.upload_hours[0]:02d}:00–{plan.upload_hours[-1] + 1:02d}:00"
    out: list[str] = []
    if sensor_id is not None and sensor_id != plan.sensor_id:
        return [f"The demo's incident is on sensor #{plan.sensor_id}: choose it in the sidebar."]
    if range_start is not None and range_start > plan.first_contact:
        out.append(f"The incident starts on {first}: set the time range to Last 30 days.")
    texts = {
        "overview": [
            f"The cyberweather calendar turns Severe and Critical from {first} to {last}, "
            f"then back to normal: that is the incident.",
            f"Pick {first} in “What changed”: a new country ({plan.c2_country}) and a new "
            f"toxic remote, {c2}, contacted by {ws}. Next: Threat hunting → Threat storylines.",
        ],
        "devices": [
            f"Open {ws}: from {first} it has toxic OUT flows every hour, and on {up} at "
            f"{up_hours} (non-working hours) it sends {gb:.1f} GB out.",
            "Its device evidence pack holds the storyline and those flows.",
        ],
        "protocols": [
            f"Port {plan.upload_port} carries {gb:.1f} GB out from {ws} on {up}, "
            f"{up_hours}: the exfiltration. Ports 22 (SSH) and 3389 (RDP) show the "
            f"brute-force waves against {server} on {waves}.",
        ],
        "toxic": [
            f"{ws} contacts {c2} ({plan.c2_country}, command and control) every hour "
            f"from {first} to {last}: the beacon. It stops on {d(plan.last_day + 1)} "
            "(contained).",
            f"The inbound peaks of {waves} are brute-force waves on SSH and RDP against "
            f"{server}.",
        ],
        "remotes": [
            f"{c2} is the site's only remote in {plan.c2_country}: {ws} talks to it from "
            f"{first} to {last}, a few kB an hour, then {gb:.1f} GB on {up}.",
        ],
        "hunting": [
            f"Threat storylines: {ws} → {c2}, first contact {first}, last {last}, "
            f"regularity close to 1 (every {plan.period_min} min: a beacon).",
            f"First-seen remotes: set a custom range on {first} alone, {c2} comes first. "
            f"Upload anomalies: {up} at {up_hours}. Non-working hours: a range around {up} "
            f"flags {show('name', plan.workstation_name)}.",
        ],
    }
    return out + texts.get(page, [])


def guide(view: View, page: str) -> None:
    """The collapsed "What to look at" panel (demo mode only; nothing otherwise)."""
    if not view.settings.demo:
        return
    from flux_dashboard.service import embedded_simulator

    plan = embedded_simulator(view.settings).story
    if plan is None:
        return
    alias = masker(view.settings).mask_value if view.masked else None
    lines = guide_text(plan, page, alias, view.start, int(view.sensor["id"]))
    with st.expander(":material/tour: What to look at", expanded=False):
        for line in lines:
            st.markdown(text(line))
