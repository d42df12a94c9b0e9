"""Hostile values: device names with HTML or markdown are never rendered raw, and
values from a link never render as links or images."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator import HTML_NAME, MARKDOWN_NAME
from tests.kit.apptest import (
    DEVICES,
    OVERVIEW,
    PAGES,
    markdown_bodies,
    new_app,
    said,
)
from tests.kit.demo import (
    device_options,
)

pytestmark = pytest.mark.usefixtures("app_env")


# ------------------------------------------------------------------ safety
def _assert_markdown_safe(at: AppTest) -> None:
    for body in markdown_bodies(at):
        assert "<img" not in body, body
        assert "<b>" not in body, body
        assert "](javascript:" not in body, body


@pytest.mark.parametrize("page", PAGES)
def test_html_device_name_never_rendered_raw(page_runs: dict[str, AppTest], page: str) -> None:
    _assert_markdown_safe(page_runs[page])


def test_html_device_name_escaped_when_shown(page_runs: dict[str, AppTest]) -> None:
    """Filter on the devices named with HTML/markdown and drill into them: escaped."""
    ips = {}
    for opt in device_options(page_runs[OVERVIEW]):
        name, _, ip = opt.rpartition(" · ")
        if name in (HTML_NAME, MARKDOWN_NAME):
            ips[name] = ip
    assert HTML_NAME in ips, "the simulator's HTML-named device is not in the data"
    at = new_app()
    at.run()
    at.sidebar.multiselect(key="device").set_value(sorted(ips.values())).run()
    seen = False
    for page in PAGES:
        if page != OVERVIEW:
            at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        _assert_markdown_safe(at)
        # the name is in the header caption, escaped
        seen |= any("&lt;img" in b or "\\<img" in b for b in markdown_bodies(at))
    at.switch_page(DEVICES).run()
    at.selectbox(key="drill").set_value(ips[HTML_NAME]).run()
    assert not at.exception
    _assert_markdown_safe(at)
    heading = [b for b in markdown_bodies(at) if b.startswith("#### ")]
    assert heading and "&lt;img" in heading[0], heading
    assert seen


PHISH = "[Session expired, sign in](https://evil.example) ![](https://evil.example/p.gif)"
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"(?<!\\)\]\(\s*<?https?://evil", re.I)
_IMAGE = re.compile(r"(?<!\\)!\[")


# What GFM turns into a link by itself, in the text as rendered (escapes resolved):
# a bare http(s) URL, a www. name, an e-mail address.
BARE = "see https://evil.example/sso http://evil.example/x www.evil.example ops@evil.example"
_AUTOLINK = re.compile(r"(?i)https?://|\bwww\.|[\w.+-]@[\w-]+\.")


def markdown_links_to_evil(at: AppTest) -> list[str]:
    """Markdown bodies that would render a link or an image (to evil.example): an
    unescaped ``](https://evil`` or ``![`` outside code spans, or text that GFM
    autolinks once the escapes are resolved (a bare URL, www., an e-mail address)."""
    bad = []
    for body in markdown_bodies(at):
        outside_code = _CODE_SPAN.sub("", body)
        rendered = re.sub(r"\\(.)", r"\1", outside_code)
        if _LINK.search(outside_code) or _IMAGE.search(outside_code) or \
                _AUTOLINK.search(rendered):
            bad.append(body)
    return bad


FIELDS = ["remote", "sensor", "protocol", "port", "mac", "device", "threat"]


@pytest.mark.parametrize("query", [
    *({k: value} for value in (PHISH, BARE) for k in FIELDS), {PHISH: "1"}, {BARE: "1"},
], ids=[*(f"{k}-{kind}" for kind in ("markdown", "bare") for k in FIELDS),
        "unknown-name-markdown", "unknown-name-bare"])
def test_link_values_never_render_as_links_or_images(query: dict[str, str]) -> None:
    at = new_app(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    # the value is reported (an error or a warning), as text
    shown = said([*at.error, *at.warning])
    assert any("evil" in s.lower() for s in shown), shown
    assert markdown_links_to_evil(at) == []
