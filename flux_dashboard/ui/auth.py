"""Sign-in and access for a session: the gate every page passes, the audit helpers.

With an ``[auth]`` section in the secrets, every page requires sign-in
(Streamlit's OIDC: ``st.login``/``st.user``/``st.logout``), sessions end
``FLUX_SESSION_HOURS`` after the token was issued, and the access policy
decides the role and sensors; a user no rule matches sees an "ask an
administrator" page. Without it, a server that reads a real API key and
listens beyond loopback refuses to show data unless anonymous access is
allowed explicitly (then a permanent banner says so). ``gate()`` returns the
``Session`` or None after drawing the page that explains why not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from flux_dashboard import clock
from flux_dashboard import errors as E
from flux_dashboard.access import (
    ANONYMOUS,
    Grant,
    Hosting,
    Identity,
    anonymous_refusal,
    session_expired,
)
from flux_dashboard.audit import AuditLog
from flux_dashboard.budget import Budgets, Meter
from flux_dashboard.service import request_meter
from flux_dashboard.ui.state import _secrets, settings
from flux_dashboard.ui.text import text


@dataclass(frozen=True)
class Session:
    user: str  # the email, or "anonymous"
    grant: Grant
    signed_in: bool
    hosting: Hosting

    @property
    def role(self) -> str:
        return self.grant.role


def hosting() -> Hosting:
    return Hosting.load(settings(), _secrets())


@st.cache_resource(show_spinner=False)
def _audit(path: str) -> AuditLog:
    cfg = settings()
    return AuditLog(Path(path), secret=cfg.api_key.reveal() if cfg.api_key else None,
                    clock=cfg.now)


def audit_log(host: Hosting) -> AuditLog:
    return _audit(str(host.audit_file))


@st.cache_resource(show_spinner=False)
def _meter(cfg_id: str) -> Meter:  # the key: cache dir and shared state
    return request_meter(settings())


def meter() -> Meter:
    """The deployment's request counters (a file beside the cache, or Redis)."""
    cfg = settings()
    return _meter(f"{cfg.cache_dir}|{cfg.shared_id}")


def budgets(host: Hosting) -> Budgets:
    return Budgets(host.user_daily_budget, host.global_daily_budget, host.monthly_quota)


def record(session: Session, event: str, **fields: Any) -> None:
    """Append an audit event for this session (never raises into the page)."""
    try:
        audit_log(session.hosting).record(event, user=session.user, role=session.role,
                                          **fields)
    except OSError:
        import logging

        logging.getLogger(__name__).warning("could not write the audit trail")


def _claims() -> dict:
    try:
        return dict(st.user.to_dict())
    except Exception:  # no user info at all (bare runs)
        return {}


def gate() -> Session | None:
    """The session's identity and grant, or None after explaining why not."""
    try:
        cfg = settings()
        host = hosting()
    except E.ConfigError as exc:
        st.error(f"Configuration problem: {text(exc)}", icon=":material/settings:")
        return None
    if not host.auth:
        refusal = anonymous_refusal(cfg, host, st.get_option("server.address"))
        if refusal:
            st.error(text(refusal), icon=":material/lock:")
            return None
        if host.allow_anonymous and not cfg.demo:
            st.warning("Anonymous access is on (FLUX_ALLOW_ANONYMOUS=1): anyone who can reach "
                       "this address sees every sensor of the API key.",
                       icon=":material/lock_open:")
        return Session("anonymous", ANONYMOUS, False, host)

    claims = _claims()
    if not claims.get("is_logged_in"):
        _sign_in_page()
        return None
    try:
        policy = host.policy()
    except E.ConfigError as exc:
        st.error(f"The access policy cannot be read, so nobody can be let in: {text(exc)} "
                 "Ask an administrator.", icon=":material/policy:")
        return None
    who = Identity.from_claims(claims, groups_claim=policy.groups_claim)
    user = who.email or str(claims.get("sub") or "unknown")
    # A token ages in real time, whatever the data's clock says (clock.py).
    if session_expired(who, clock.wall(), host.session_hours):
        _expired_page(host)
        return None
    grant = policy.grant_for(who)
    if grant is None:
        if not st.session_state.get("_flux_denied_logged"):
            st.session_state["_flux_denied_logged"] = True
            audit_log(host).record("denied", user=user, role="none",
                                   reason="no access rule matches")
        _no_access_page(user)
        return None
    session = Session(user, grant, True, host)
    if st.session_state.get("_flux_signed_in_as") != user:
        st.session_state["_flux_signed_in_as"] = user
        record(session, "sign_in", rule=grant.rule)
    return session


def _sign_in_page() -> None:
    st.title("Flux · Serenicity flows", anchor=False)
    st.info("Sign in with your organisation's account to see the flows.",
            icon=":material/login:")
    st.button("Sign in", key="sign_in_btn", type="primary", on_click=st.login,
              icon=":material/login:")


def _expired_page(host: Hosting) -> None:
    st.title("Flux · Serenicity flows", anchor=False)
    st.warning(f"Your session has expired (sessions last {host.session_hours} hours). "
               "Sign in again to continue.", icon=":material/timer_off:")
    st.button("Sign in again", key="sign_in_again_btn", type="primary", on_click=st.login,
              icon=":material/login:")
    st.button("Sign out", key="sign_out_btn", on_click=st.logout)


def _no_access_page(user: str) -> None:
    st.title("Flux · Serenicity flows", anchor=False)
    st.error(f"You are signed in as {text(user)}, but no sensor is shared with this account. "
             "Ask an administrator to give you access.", icon=":material/block:")
    st.button("Sign out", key="sign_out_btn", on_click=st.logout, icon=":material/logout:")


def _sign_out(session: Session) -> None:
    record(session, "sign_out")
    st.logout()


def sidebar_identity(session: Session, container: Any) -> None:
    """Who is signed in, in which role, with the sign-out button and the quota meter."""
    if session.signed_in:
        container.caption(f":material/account_circle: {text(session.user)} · {session.role}")
        container.button("Sign out", key="sign_out_btn", on_click=_sign_out, args=(session,),
                         icon=":material/logout:", width="stretch")
    else:
        container.caption(":material/account_circle: Not signed in (no sign-in configured)")
    host = session.hosting
    try:
        usage = meter().usage(session.user)
    except E.FluxError:  # shared state (Redis) unreachable: said where a load needs it
        container.caption(":material/speed: API request counters unavailable right now")
        return
    quota = f" / {host.monthly_quota:,}" if host.monthly_quota else ""
    container.caption(f":material/speed: API requests by this deployment: {usage.today:,} "
                      f"today · {usage.month:,}{quota} this month")
