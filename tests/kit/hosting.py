"""Hosted use through AppTest: sign-in configured, signed-in users, the audit trail.

``[auth]`` is configured but never contacted: ``at.user`` stands for a signed-in
user (STACK.md 1.10b; the real OIDC flow is the browser suite's). Tokens are
issued at the pinned instant (``user(age_h=...)`` makes older ones), and the
real time a token ages in (``clock.wall``) is pinned too by ``hosted``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard import clock
from tests.kit.apptest import APP, TIMEOUT, hermetic
from tests.kit.clock import PINNED
from tests.kit.procs import ROOT

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "c" * 40,
        "client_id": "flux", "client_secret": "s" * 20,
        "server_metadata_url": "http://localhost:9/.well-known/openid-configuration"}
EXAMPLE_POLICY = (ROOT / "deploy" / "access.example.toml").read_text()


def user(email: str, groups=(), age_h: float = 0.0, verified: bool = True) -> dict:
    """The claims of a user signed in ``age_h`` hours before the pinned instant."""
    return {"is_logged_in": True, "email": email, "email_verified": verified,
            "groups": list(groups), "iat": int(PINNED.timestamp() - age_h * 3600), "sub": email}


# The example policy's roles (deploy/access.example.toml): admin, analyst (group soc,
# sensors 54 and 77), viewer (verified customer.example addresses, sensor 54).
ALICE = user("alice@corp.example")
BOB = user("bob@corp.example", groups=["soc"])
CAROL = user("carol@customer.example")
EVE = user("eve@else.example")


@contextmanager
def hosted(root: Path, policy: str = EXAMPLE_POLICY, **settings: str
           ) -> Iterator[pytest.MonkeyPatch]:
    """``kit.apptest.hermetic`` with an access policy and an audit trail in ``root``,
    and the wall clock (a token's age) pinned to the suite's instant."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "access.toml").write_text(policy)
    with hermetic(root / "cache", FLUX_ACCESS_FILE=str(root / "access.toml"),
                  FLUX_AUDIT_FILE=str(root / "audit.jsonl"), **settings) as mp:
        mp.setattr(clock, "wall", lambda: PINNED)
        yield mp


def signed_in(who: dict | None, page: str | None = None, *, auth: bool = True,
              **query: str) -> AppTest:
    """The app as ``who`` (None: nobody signed in), opened on a link, at ``page``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if auth:
        at.secrets["auth"] = AUTH
    else:
        at.secrets["FLUX_APPTEST"] = "1"
    if who is not None:
        at.user = who
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def audit_lines(path: Path) -> list[dict]:
    """The audit trail's events (``path``: the file, or the folder that holds it)."""
    path = path / "audit.jsonl" if path.is_dir() else path
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
