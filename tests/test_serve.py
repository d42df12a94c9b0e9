"""``make serve``: the startup check refuses unsafe or broken hosting in one plain line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flux_dashboard import errors as E
from flux_dashboard.serve import plan

ROOT = Path(__file__).resolve().parents[1]
AUTH = """
[auth]
redirect_uri = "https://flux.corp.example/soc/oauth2callback"
cookie_secret = "0123456789abcdef0123456789abcdef-long"
client_id = "flux"
client_secret = "s3cr3t"
server_metadata_url = "https://login.corp.example/.well-known/openid-configuration"
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "access.toml").write_text((ROOT / "deploy" / "access.example.toml").read_text())
    (tmp_path / "secrets.toml").write_text(AUTH)
    return tmp_path


def env(files: Path, **kw: str) -> dict[str, str]:
    return {"FLUX_CACHE_DIR": str(files / "cache"), "FLUX_ACCESS_FILE": str(files / "access.toml"),
            **kw}


def test_a_complete_configuration_gives_production_flags(files):
    p = plan(env(files, FLUX_PORT="8600"), files / "secrets.toml")
    assert p.auth and p.rules == 3 and p.port == 8600 and p.address == "0.0.0.0"
    assert p.public_url == "https://flux.corp.example/soc"
    flags = dict(zip(p.flags()[::2], p.flags()[1::2], strict=True))
    assert flags["--server.enableXsrfProtection"] == "true"
    assert flags["--server.enableCORS"] == "true"
    assert flags["--server.corsAllowedOrigins"] == "https://flux.corp.example"
    assert flags["--server.allowedHosts"] == "flux.corp.example"
    assert flags["--server.baseUrlPath"] == "soc"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--client.showErrorDetails"] == "none"
    assert flags["--server.enableAgentApi"] == "false"
    assert flags["--secrets.files"] == str(files / "secrets.toml")
    assert "s3cr3t" not in " ".join(p.flags()) and "s3cr3t" not in p.summary()


@pytest.mark.parametrize("edit, message", [
    (("client_secret = \"s3cr3t\"\n", ""), "lacks client_secret"),
    (("/soc/oauth2callback", "/soc/callback"), "ending in /oauth2callback"),
    (("https://flux.corp.example", "flux.corp.example"), "absolute URL"),
    (("https://flux.corp.example", "http://flux.corp.example"), "https outside"),
    (("0123456789abcdef0123456789abcdef-long", "short"), "cookie_secret must be at least"),
    (("https://login.corp.example/.well-known", "login/.well-known"), "server_metadata_url"),
])
def test_broken_auth_is_refused(files, edit, message):
    path = files / "secrets.toml"
    path.write_text(AUTH.replace(*edit))
    with pytest.raises(E.ConfigError, match=message):
        plan(env(files), path)


def test_access_policy_is_required_and_checked(files):
    with pytest.raises(E.ConfigError, match="FLUX_ACCESS_FILE is not"):
        plan({"FLUX_CACHE_DIR": str(files)}, files / "secrets.toml")
    (files / "access.toml").write_text("[[rule]]\nemail = 'a@b.example'\nrole = 'boss'\n"
                                       "sensors = ['*']\n")
    with pytest.raises(E.ConfigError, match="role must be one of"):
        plan(env(files), files / "secrets.toml")
    (files / "access.toml").write_text("groups_claim = 'groups'\n")
    with pytest.raises(E.ConfigError, match="has no rule"):
        plan(env(files), files / "secrets.toml")


def test_real_key_without_sign_in_needs_sign_in_or_explicit_anonymity(files):
    """`make serve` is the hosted mode: a real key without [auth] is refused on every
    address (a loopback address behind a reverse proxy serves the network all the
    same), unless anonymity is explicit. It once passed on 127.0.0.1."""
    (files / "secrets.toml").write_text('SERENICITY_API_KEY = "a-real-key-1234567890"\n')
    for address in ("0.0.0.0", "127.0.0.1", "localhost", "::1"):
        with pytest.raises(E.ConfigError, match="FLUX_ALLOW_ANONYMOUS=1") as err:
            plan(env(files, FLUX_ADDRESS=address), files / "secrets.toml")
        assert "a-real-key" not in str(err.value)
    assert plan(env(files, FLUX_ALLOW_ANONYMOUS="1"), files / "secrets.toml").auth is False
    # the demo needs no sign-in anywhere
    (files / "secrets.toml").write_text("")
    assert plan(env(files), files / "secrets.toml").rules == 0


# The matrix of deploy/README.md ("What make serve refuses"): FLUX_PUBLIC_URL, the
# address and the [auth] section, each combination accepted or refused as documented.
BROKEN_AUTH = {
    "http-redirect": (("https://flux.corp.example", "http://flux.corp.example"),
                      "https outside"),
    "short-cookie": (("0123456789abcdef0123456789abcdef-long", "abc"),
                     "cookie_secret must be at least"),
    "no-client-secret": (("client_secret = \"s3cr3t\"\n", ""), "lacks client_secret"),
    "no-metadata": (("server_metadata_url = \"https://login.corp.example/.well-known/"
                     "openid-configuration\"\n", ""), "lacks server_metadata_url"),
}
PUBLIC_URLS = {"unset": None, "same-origin": "https://flux.corp.example/soc",
               "other-origin": "https://dashboard.other.example"}


@pytest.mark.parametrize("public", PUBLIC_URLS)
@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1"])
@pytest.mark.parametrize("auth", ["complete", *BROKEN_AUTH, "none-real-key", "none-demo"])
def test_serve_matrix(files, public, address, auth):
    secrets = files / "secrets.toml"
    if auth in BROKEN_AUTH:
        secrets.write_text(AUTH.replace(*BROKEN_AUTH[auth][0]))
    elif auth == "none-real-key":
        secrets.write_text('SERENICITY_API_KEY = "a-real-key-1234567890"\n')
    elif auth == "none-demo":
        secrets.write_text("")
    extra = {"FLUX_ADDRESS": address}
    if PUBLIC_URLS[public]:
        extra["FLUX_PUBLIC_URL"] = PUBLIC_URLS[public]
    if auth in BROKEN_AUTH:  # every check runs, whatever FLUX_PUBLIC_URL says
        with pytest.raises(E.ConfigError, match=BROKEN_AUTH[auth][1]):
            plan(env(files, **extra), secrets)
    elif auth == "none-real-key":  # whatever the address
        with pytest.raises(E.ConfigError, match="FLUX_ALLOW_ANONYMOUS=1"):
            plan(env(files, **extra), secrets)
    elif auth == "complete" and public == "other-origin":
        with pytest.raises(E.ConfigError, match="different origins"):
            plan(env(files, **extra), secrets)
    else:
        p = plan(env(files, **extra), secrets)
        assert p.address == address and p.auth == (auth == "complete")
        flags = dict(zip(p.flags()[::2], p.flags()[1::2], strict=False))
        assert flags["--client.disableDataExport"] == "true"
        hosts = [v for k, v in zip(p.flags()[::2], p.flags()[1::2], strict=True)
                 if k == "--server.allowedHosts"]
        if p.public_url:
            assert hosts == [urlsplit(p.public_url).hostname]
        elif address == "127.0.0.1":  # loopback: this machine's own names only
            assert hosts == ["localhost", "127.0.0.1", "::1"]
        else:
            assert hosts == []


def test_serve_check_exits_with_one_plain_line(files):
    base = {"PATH": "/usr/bin:/bin", "HOME": str(files), **env(files)}
    bad = subprocess.run([sys.executable, "-m", "flux_dashboard.serve", "--check"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**base, "FLUX_SECRETS_FILE": str(files / "missing-dir" / "x"),
                              "SERENICITY_API_KEY": "a-real-key-1234567890"})
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("Cannot serve: ")
    assert "Traceback" not in bad.stderr and "a-real-key" not in bad.stderr
    good = subprocess.run([sys.executable, "-m", "flux_dashboard.serve", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, "FLUX_SECRETS_FILE": str(files / "secrets.toml")})
    assert good.returncode == 0, good.stderr
    assert "sign-in required, 3 access rule(s)" in good.stdout


def test_the_commented_auth_example_is_complete_and_accepted(files):
    """The [auth] example of .streamlit/secrets.toml.example, uncommented, passes the check."""
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text()
    block = example[example.index("# [auth]"):]
    lines = [ln[2:] for ln in block.splitlines()
             if ln.startswith("# ") and not ln.startswith("# # ")]
    auth = "\n".join(lines)
    assert all(f"\n{k} = " in f"\n{auth}" for k in
               ("redirect_uri", "cookie_secret", "client_id", "client_secret",
                "server_metadata_url"))
    (files / "secrets.toml").write_text(auth + "\n")
    p = plan(env(files), files / "secrets.toml")
    assert p.auth and p.public_url == "https://flux.corp.example" and p.rules == 3


def test_make_run_binds_to_loopback_only():
    """`make run` (demo mode, no sign-in) listens on 127.0.0.1, not Streamlit's default of
    every interface; the address is overridable, and the override is what is used."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("ADDRESS", "PORT", "MAKEFLAGS")}

    def run_line(*args: str) -> str:
        out = subprocess.run(["make", "-n", "run", *args], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        lines = [line for line in out.splitlines() if "streamlit run app.py" in line]
        assert len(lines) == 1, out
        return lines[0]

    assert run_line().split("--server.address")[1].split()[0] == "127.0.0.1"
    assert run_line("ADDRESS=0.0.0.0").split("--server.address")[1].split()[0] == "0.0.0.0"
