"""Sign-in and access for a session: the gate every page passes, the audit helpers.

With an ``[auth]`` section in the secrets, every page requires sign-in
(Streamlit's OIDC: ``st.login``/``st.user``/``st.logout``), sessions end
``FLUX_SESSION_HOURS`` after the token was issued, and the access policy
decides the role and sensors; a user no rule matches sees an "ask an
administrator" page. Without it, a server that reads a real API key and
listens beyond loopback refuses to show data unless anonymous access is
allowed explicitly (then a permanent banner says so). ``gate()`` returns the
``Session`` or None after drawing the page that explains why not.

Files are built on click, outside the script run (download callables): each
build calls ``still_allowed`` first, which checks the identity again at that
moment (signed out, token expired in real time, rule removed or narrowed in
the access file). In hosted mode (sign-in, or ``make serve``) an action that
must be audited is refused when its audit line cannot be written
(``record`` raises ``AuditUnavailableError``). ``spender`` gives the session's
``spending.Spender``: every load of every page goes through it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

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
from flux_dashboard.config import memory_budget
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.service import request_meter
from flux_dashboard.spending import Spender
from flux_dashboard.ui.state import _secrets, settings


@dataclass(frozen=True)
class Session:
    user: str  # the email, or "anonymous"
    grant: Grant
    signed_in: bool
    hosting: Hosting
    identity: Identity | None = None  # the sign-in's claims (None: no sign-in)
    session_id: str = ""  # Streamlit's session (browser tab) id

    @property
    def role(self) -> str:
        return self.grant.role

    @property
    def must_audit(self) -> bool:
        """Hosted (sign-in, or `make serve`): audited actions need their audit line."""
        return self.hosting.auth or self.hosting.hosted


# Tabs whose user signed out: their pending file builds are refused.
_SIGNED_OUT: set[str] = set()
_SIGNED_OUT_LOCK = threading.Lock()


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


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


def record(session: Session, event: str, *, required: bool = True, **fields: Any) -> None:
    """Append an audit event for this session.

    When it cannot be written: in hosted mode an action that must be audited
    (``required``: exports, packs, loads) raises ``AuditUnavailableError``, so the
    caller refuses it; otherwise a log warning.
    """
    try:
        audit_log(session.hosting).record(event, user=session.user, role=session.role,
                                          **fields)
    except OSError:
        import logging

        logging.getLogger(__name__).warning("could not write the audit trail")
        if required and session.must_audit:
            raise E.AuditUnavailableError(
                "This action is refused because the audit trail cannot be written right "
                "now. Ask an administrator to check FLUX_AUDIT_FILE.") from None


def spender(session: Session) -> Spender:
    """What this session's loads are measured, booked and audited against."""
    cfg, host = settings(), session.hosting
    return Spender(user=session.user, meter=meter(), budgets=budgets(host),
                   confirm_over=host.confirm_requests, metered=not cfg.demo,
                   rate_per_min=cfg.rate_limit_per_min,
                   audit=lambda event, **kw: record(session, event, **kw),
                   memory_limit=memory_budget("hot", cfg.memory_mb))


def still_allowed(session: Session, sensor_id: object = None, *, masked: bool | None = None,
                  admin: bool = False) -> str | None:
    """Why a file built now for this session must be refused, or None.

    Checked when the file is built (a download click runs outside the script
    run, possibly long after the page was drawn): the tab's user has not signed
    out, the token has not expired (real time), and the access file, read
    again, still grants this sensor (unmasked only if the grant is not masked;
    the Activity page's files: still an admin).
    """
    if not session.signed_in:
        return None
    with _SIGNED_OUT_LOCK:
        if session.session_id and session.session_id in _SIGNED_OUT:
            return "You signed out: sign in again to download."
    host = session.hosting
    if session.identity is None or session_expired(session.identity, clock.wall(),
                                                   host.session_hours):
        return (f"Your session has expired (sessions last {host.session_hours} hours): "
                "sign in again to download.")
    try:
        grant = host.policy().grant_for(session.identity)
    except E.ConfigError:
        return "The access policy cannot be read right now: ask an administrator."
    if grant is None or (sensor_id is not None and not grant.allows(sensor_id)):
        return "Your access to this sensor was withdrawn: ask an administrator."
    if masked is False and grant.masked:
        return "Your account now sees masked identifiers only: reload the page."
    if admin and not grant.is_admin:
        return "This download is for administrators only."
    return None


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
        refusal = anonymous_refusal(cfg, host, st.get_option("server.address"),
                                    hosted=host.hosted)
        if refusal:
            st.error(text(refusal), icon=":material/lock:")
            return None
        if host.allow_anonymous and not cfg.demo:
            st.warning("Anonymous access is on (FLUX_ALLOW_ANONYMOUS=1): anyone who can reach "
                       "this address sees every sensor of the API key.",
                       icon=":material/lock_open:")
        return Session("anonymous", ANONYMOUS, False, host, None, _session_id())

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
            try:
                audit_log(host).record("denied", user=user, role="none",
                                       reason="no access rule matches")
            except OSError:
                pass  # refused anyway
        _no_access_page(user)
        return None
    session = Session(user, grant, True, host, who, _session_id())
    if st.session_state.get("_flux_signed_in_as") != user:
        st.session_state["_flux_signed_in_as"] = user
        record(session, "sign_in", required=False, rule=grant.rule)
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
    with _SIGNED_OUT_LOCK:
        if session.session_id:
            _SIGNED_OUT.add(session.session_id)
    record(session, "sign_out", required=False)
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
