"""``make serve``: check the hosting configuration, then run Streamlit as a hosted service.

``python -m flux_dashboard.serve`` reads the same settings as the app
(environment and the secrets file: ``FLUX_SECRETS_FILE``, default
``.streamlit/secrets.toml``, which Streamlit is then told to read and nothing
else), checks them, and exits with
one plain line when something would make the hosted link unsafe or broken:
an incomplete ``[auth]`` section, a ``redirect_uri`` that is not an absolute
``…/oauth2callback`` URL, a short ``cookie_secret``, a ``FLUX_PUBLIC_URL`` on
another origin than ``redirect_uri``, a missing or invalid access policy, or a
real API key served without sign-in (and without ``FLUX_ALLOW_ANONYMOUS=1``),
whatever the address: a loopback address behind a reverse proxy is on the
network all the same. Every check runs whatever else is set. Then it replaces
itself with
``streamlit run app.py`` and production flags: headless, address and port
from ``FLUX_ADDRESS``/``FLUX_PORT``, XSRF protection and CORS on with the
public origin as the only allowed origin, ``server.allowedHosts`` set to the
public host (DNS rebinding), the base path of the public URL, usage stats off,
no error details in the browser, the experimental agent API off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flux_dashboard import errors as E
from flux_dashboard.access import Hosting, anonymous_refusal, is_loopback
from flux_dashboard.config import load_settings, read_secrets, secrets_file

ROOT = Path(__file__).resolve().parents[1]
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret",
             "server_metadata_url")
MIN_COOKIE_SECRET = 32
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # also .streamlit/config.toml's


@dataclass(frozen=True)
class Plan:
    address: str
    port: int
    public_url: str | None  # scheme://host[:port][/base]
    auth: bool
    rules: int
    audit_file: Path
    secrets_file: Path

    @property
    def base_path(self) -> str:
        return urlsplit(self.public_url).path.strip("/") if self.public_url else ""

    def flags(self) -> list[str]:
        flags = ["--server.headless", "true", "--server.address", self.address,
                 "--server.port", str(self.port),
                 "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
                 "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
                 "--client.toolbarMode", "minimal", "--server.enableAgentApi", "false",
                 "--client.disableDataExport", "true",
                 "--server.runOnSave", "false", "--server.fileWatcherType", "none",
                 # exactly the file checked here, not ~/.streamlit or the script's folder
                 "--secrets.files", str(self.secrets_file)]
        if self.public_url:
            parts = urlsplit(self.public_url)
            flags += ["--server.corsAllowedOrigins", f"{parts.scheme}://{parts.netloc}",
                      "--server.allowedHosts", parts.hostname or ""]
        elif is_loopback(self.address):  # DNS rebinding: only this machine's own names
            for host in LOCAL_HOSTS:
                flags += ["--server.allowedHosts", host]
        if self.base_path:
            flags += ["--server.baseUrlPath", self.base_path]
        return flags

    def summary(self) -> str:
        where = self.public_url or f"http://{self.address}:{self.port}"
        who = (f"sign-in required, {self.rules} access rule(s)" if self.auth
               else "no sign-in")
        return f"Flux dashboard: serving {where} · {who} · audit trail in {self.audit_file}"


def _check_auth(auth: Mapping) -> str:
    """Validate ``[auth]`` (one provider, or named ``[auth.NAME]`` ones); the public URL."""
    missing = [k for k in ("redirect_uri", "cookie_secret") if not auth.get(k)]
    providers = {k: v for k, v in auth.items() if isinstance(v, Mapping)}
    if not providers:
        providers = {"default": auth}
    for name, conf in providers.items():
        missing += [f"{k}" if name == "default" else f"{name}.{k}"
                    for k in ("client_id", "client_secret", "server_metadata_url")
                    if not conf.get(k)]
    if missing:
        raise E.ConfigError(f"[auth] in secrets.toml lacks {', '.join(missing)}; see "
                            ".streamlit/secrets.toml.example.")
    redirect = str(auth["redirect_uri"])
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or not parts.path.endswith("/oauth2callback"):
        raise E.ConfigError("[auth] redirect_uri must be the dashboard's absolute URL ending "
                            "in /oauth2callback, e.g. https://flux.corp.example/oauth2callback.")
    if parts.scheme == "http" and not is_loopback(parts.hostname) \
            and parts.hostname != "localhost":
        raise E.ConfigError("[auth] redirect_uri must use https outside this machine.")
    if len(str(auth["cookie_secret"])) < MIN_COOKIE_SECRET:
        raise E.ConfigError(f"[auth] cookie_secret must be at least {MIN_COOKIE_SECRET} "
                            "random characters, the same on every replica.")
    for name, conf in providers.items():
        meta = urlsplit(str(conf["server_metadata_url"]))
        if meta.scheme not in ("http", "https") or not meta.hostname:
            raise E.ConfigError(f"[auth] server_metadata_url of {name} must be the provider's "
                                "…/.well-known/openid-configuration URL.")
    base = parts.path[: -len("/oauth2callback")]
    return f"{parts.scheme}://{parts.netloc}{base}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def plan(env: Mapping[str, str], secrets_path: Path) -> Plan:
    """What ``make serve`` would run, or ConfigError with one plain line."""
    secrets = read_secrets(secrets_path)
    settings = load_settings(env=dict(env), secrets=secrets)
    hosting = Hosting.load(settings, secrets, env)
    address = env.get("FLUX_ADDRESS") or "0.0.0.0"
    try:
        port = int(env.get("FLUX_PORT") or 8501)
    except ValueError:
        raise E.ConfigError("FLUX_PORT must be a port number.") from None
    if not 0 < port < 65536:
        raise E.ConfigError("FLUX_PORT must be a port number.")
    public = env.get("FLUX_PUBLIC_URL") or None
    rules = 0
    if hosting.auth:
        # Always checked: FLUX_PUBLIC_URL once skipped every [auth] check, a 3-character
        # cookie_secret included (anyone could then forge the identity cookie).
        signed_in_at = _check_auth(secrets["auth"])
        if public and _origin(public) != _origin(signed_in_at):
            raise E.ConfigError(f"FLUX_PUBLIC_URL ({_origin(public)}) and [auth] redirect_uri "
                                f"({_origin(signed_in_at)}) name different origins: sign-in "
                                "only works at redirect_uri's. Make them the same.")
        public = public or signed_in_at
        if hosting.access_file is None:
            raise E.ConfigError("Sign-in is configured but FLUX_ACCESS_FILE is not: nobody "
                                "could see anything (see deploy/access.example.toml).")
        rules = len(hosting.policy().rules)
        if rules == 0:
            raise E.ConfigError(f"The access policy {hosting.access_file} has no rule: nobody "
                                "could see anything.")
    else:
        refusal = anonymous_refusal(settings, hosting, address, hosted=True)
        if refusal:
            raise E.ConfigError(refusal)
    if public:
        parts = urlsplit(public)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise E.ConfigError("FLUX_PUBLIC_URL must look like https://flux.corp.example.")
    return Plan(address, port, public.rstrip("/") if public else None, hosting.auth, rules,
                hosting.audit_file, secrets_path)


def main(argv: list[str] | None = None) -> int:
    check_only = "--check" in (argv if argv is not None else sys.argv[1:])
    try:
        p = plan(os.environ, secrets_file().resolve())
    except E.ConfigError as exc:
        print(f"Cannot serve: {exc}", file=sys.stderr)
        return 2
    print(p.summary(), flush=True)
    if check_only:
        return 0
    args = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), *p.flags()]
    # The app then applies the hosted rules too (no anonymous real key on any address).
    os.environ["FLUX_HOSTED"] = "1"
    os.execv(sys.executable, args)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
