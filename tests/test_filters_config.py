"""Filters as data (table-driven) and settings (env over secrets, key never shown)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import polars as pl
import pytest

from flux_dashboard.config import DEMO_API_URL, Secret, Settings, load_settings
from flux_dashboard.errors import ConfigError
from flux_dashboard.filters import Filters

ROWS = pl.DataFrame({
    "start_of_hour": [datetime(2026, 3, 2, h, tzinfo=UTC) for h in (6, 12, 22, 23)],
    "ip0": ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"],
    "ip1": ["1.1.1.1", "8.8.8.8", "1.1.1.1", "9.9.9.9"],
    "dir": ["OUT", "IN", "OUT", "OUT"],
    "protocol": ["TCP", "UDP", "ICMP", "TCP"],
    "port": pl.Series([443, 53, None, 22], dtype=pl.Int32),
    "mac_address": ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:01", None],
    "toxic": [False, True, True, False],
    "tor_node": [False, True, False, False],
    "trojan": [False, False, True, False],
})


@pytest.mark.parametrize("kwargs,expected_rows", [
    ({}, [0, 1, 2, 3]),
    ({"devices": ["10.0.0.1"]}, [0, 2]),
    ({"devices": ["10.0.0.1", "10.0.0.3"]}, [0, 2, 3]),
    ({"remote_ip": "8.8.8.8"}, [1]),
    ({"protocol": "tcp"}, [0, 3]),
    ({"port": "443"}, [0]),
    ({"mac": "AA-BB-CC-DD-EE-01"}, [0, 2]),
    ({"direction": "IN"}, [1]),
    ({"toxic_only": True}, [1, 2]),
    ({"threats": ["trojan"]}, [2]),
    ({"threats": ["trojan", "tor_node"]}, [1, 2]),
    ({"toxic_only": True, "direction": "OUT"}, [2]),
    # Paris is UTC+1 in March: 06Z=07h, 12Z=13h, 22Z=23h, 23Z=00h; hno 19..7 -> rows 0, 2, 3
    ({"off_hours_only": True}, [0, 2, 3]),
])
def test_filter_expressions(kwargs, expected_rows):
    f, problems = Filters.parse(**kwargs)
    assert problems == []
    hno = [*range(0, 8), *range(19, 24)]
    got = ROWS.with_row_index().filter(f.to_expr("Europe/Paris", hno))["index"].to_list()
    assert got == expected_rows
    # URL round trip gives the same filters
    assert Filters.from_query(f.to_query()) == (f, [])


@pytest.mark.parametrize("kwargs,fragment", [
    ({"remote_ip": "1.1.1"}, "Remote IP"),
    ({"remote_ip": "192.168.1.300"}, "Remote IP"),
    ({"port": "70000"}, "Port"),
    ({"port": "http"}, "Port"),
    ({"mac": "00:11:22"}, "MAC"),
    ({"devices": ["pc-1"]}, "Device"),
    ({"direction": "UP"}, "Direction"),
    ({"threats": ["aliens"]}, "Threat"),
])
def test_invalid_input_gives_plain_messages(kwargs, fragment):
    f, problems = Filters.parse(**kwargs)
    assert len(problems) == 1 and problems[0].startswith(fragment)


def test_server_params_and_remainder():
    f, _ = Filters.parse(devices=["10.0.0.1"], toxic_only=True, direction="OUT", port=22,
                         threats=["trojan"])
    params = f.server_params()
    assert params == {"ip0": "10.0.0.1", "port": 22, "only_toxic": True, "only_out": True}
    rest = f.without_server_side(params)
    assert rest == Filters(threats=("trojan",))
    # several devices cannot be expressed to the API: filtered locally
    assert "ip0" not in Filters.parse(devices=["10.0.0.1", "10.0.0.2"])[0].server_params()


def test_describe():
    f, _ = Filters.parse(devices=["10.0.0.1"], toxic_only=True, direction="OUT")
    assert f.describe({"10.0.0.1": "PC-1"}) == "device PC-1 · OUT · toxic only"
    assert Filters().describe() == "all flows"


def test_settings_env_wins_over_secrets_and_key_is_hidden(tmp_path):
    env = {"SERENICITY_API_KEY": "env-key-123456", "FLUX_RATE_LIMIT": "50"}
    s = load_settings(env=env, secrets={"SERENICITY_API_KEY": "file-key-999999",
                                        "SERENICITY_API_URL": "https://x.test/api/v1/"})
    assert s.api_key.reveal() == "env-key-123456"
    assert s.api_url == "https://x.test/api/v1" and not s.demo
    assert s.rate_limit_per_min == 50
    for text in (repr(s), str(s), s.source_id, s.describe()):
        assert "env-key-123456" not in text
    with pytest.raises(TypeError):
        pickle.dumps(s.api_key)


def test_no_key_is_demo_mode():
    s = load_settings(env={}, secrets={})
    assert s.demo and s.api_url == DEMO_API_URL and s.describe() == "Demo sensor, simulated data"


def test_the_demo_shows_plain_device_names_unless_the_hostile_ones_are_asked_for():
    """FLUX_DEMO_HOSTILE_NAMES gives the embedded demo the escaping tests' device names
    (another data set: its own cache); without it a customer sees plain names."""
    from flux_dashboard.service import embedded_simulator
    from flux_dashboard.simulator import HTML_NAME

    def camera(settings: Settings) -> str:
        sim = embedded_simulator(settings)
        return next(d.custom["name"] for d in sim.traffic.sites[54].devices
                    if d.ip == "192.168.1.30")

    plain = load_settings(env={}, secrets={})
    hostile = load_settings(env={"FLUX_DEMO_HOSTILE_NAMES": "1"}, secrets={})
    assert not plain.demo_hostile_names and hostile.demo_hostile_names
    assert camera(plain) == "Caméra entrée" and camera(hostile) == HTML_NAME
    assert plain.source_id != hostile.source_id


def test_url_without_key_is_a_local_simulator():
    s = load_settings(env={"SERENICITY_API_URL": "http://127.0.0.1:9/api/v1"}, secrets={})
    assert not s.demo and s.rate_limit_per_min == 100 and s.host == "127.0.0.1:9"


@pytest.mark.parametrize("url,shown", [
    ("https://api.control.serenicity.fr/api/v1", "api.control.serenicity.fr"),
    ("https://user:s3cret-pass@api.example.test/api/v1", "api.example.test"),
    ("https://user:s3cret-pass@api.example.test:8443/api/v1", "api.example.test:8443"),
    ("http://s3cret-token@127.0.0.1:9/api/v1", "127.0.0.1:9"),
    ("http://[::1]:8765/api/v1", "[::1]:8765"),
    ("https://user:s3cret-pass@[2001:db8::1]/api/v1", "[2001:db8::1]"),
    ("https://user:s3cret-pass@[2001:db8::1]:8443/api/v1", "[2001:db8::1]:8443"),
])
def test_displayed_host_is_host_and_port_only(url, shown):
    # Settings built directly (load_settings refuses credentials, see below): the
    # display never shows them whatever the settings hold.
    s = Settings(api_url=url)
    assert s.host == shown
    assert s.describe() == f"Serenicity API · {shown}"
    assert "s3cret" not in s.describe() and "user" not in s.describe()


@pytest.mark.parametrize("url", [
    "https://user:s3cret-pass@api.example.test/api/v1",
    "http://s3cret-token@127.0.0.1:9/api/v1",
    "https://user:s3cret-pass@[2001:db8::1]:8443/api/v1",
])
def test_urls_with_credentials_are_refused_without_echoing_them(url):
    with pytest.raises(ConfigError, match="must not contain a user name or password") as err:
        load_settings(env={"SERENICITY_API_KEY": "key-123456", "SERENICITY_API_URL": url},
                      secrets={})
    assert "s3cret" not in str(err.value)


def test_malformed_url_port_is_refused():
    with pytest.raises(ConfigError, match="not a valid URL"):
        load_settings(env={"SERENICITY_API_URL": "http://127.0.0.1:99999999/api/v1"},
                      secrets={})


def test_two_keys_two_sources():
    a = load_settings(env={"SERENICITY_API_KEY": "key-a-aaaaaaa"}, secrets={})
    b = load_settings(env={"SERENICITY_API_KEY": "key-b-bbbbbbb"}, secrets={})
    assert a.source_id != b.source_id


def test_secrets_file(tmp_path):
    p = tmp_path / "secrets.toml"
    p.write_text('SERENICITY_API_KEY = "from-file-key"\n')
    s = load_settings(env={}, secrets_path=p)
    assert s.api_key == Secret("from-file-key") and not s.demo


@pytest.mark.parametrize("env,fragment", [
    ({"FLUX_RATE_LIMIT": "fast"}, "FLUX_RATE_LIMIT"),
    ({"FLUX_PER_PAGE": "0"}, "FLUX_PER_PAGE"),
    ({"SERENICITY_API_URL": "ftp://x"}, "SERENICITY_API_URL"),
    ({"FLUX_CARBON_G_PER_GB": "lots"}, "FLUX_CARBON_G_PER_GB"),
    ({"FLUX_CARBON_G_PER_GB": "0"}, "FLUX_CARBON_G_PER_GB"),
    ({"FLUX_CARBON_G_PER_GB": "-18"}, "FLUX_CARBON_G_PER_GB"),
    ({"FLUX_CARBON_G_PER_GB": "nan"}, "FLUX_CARBON_G_PER_GB"),
])
def test_bad_settings(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings(env=env, secrets={})


def test_cybercarbon_factor_setting():
    # 18 gCO2e/GB on a fixed network unless set; the vendor quotes 50 for mobile.
    assert load_settings(env={}, secrets={}).carbon_g_per_gb == 18.0
    assert load_settings(env={"FLUX_CARBON_G_PER_GB": "50"}, secrets={}).carbon_g_per_gb == 50.0
    assert load_settings(env={}, secrets={"FLUX_CARBON_G_PER_GB": "42.5"}).carbon_g_per_gb == 42.5
    both = load_settings(env={"FLUX_CARBON_G_PER_GB": "50"}, secrets={"FLUX_CARBON_G_PER_GB": 7})
    assert both.carbon_g_per_gb == 50.0  # the environment wins


def test_memory_budget_is_one_setting_shared_by_the_caches():
    from flux_dashboard.config import MEMORY_SHARES, memory_budget

    assert sum(MEMORY_SHARES.values()) == pytest.approx(1.0)
    assert load_settings(env={}, secrets={}).memory_mb == 1024
    s = load_settings(env={"FLUX_MEMORY_MB": "2048"}, secrets={})
    assert s.memory_mb == 2048
    assert memory_budget("derived", 2048) == 1024 * 2**20
    assert memory_budget("hot", 2048) + memory_budget("partial", 2048) == pytest.approx(
        1024 * 2**20, abs=2)
    for bad in ("lots", "10", "-5"):
        with pytest.raises(ConfigError, match="FLUX_MEMORY_MB"):
            load_settings(env={"FLUX_MEMORY_MB": bad}, secrets={})
    from flux_dashboard.service import build_service

    svc = build_service(load_settings(env={"FLUX_MEMORY_MB": "100"}, secrets={}))
    try:
        assert svc.loader._memory.maxsize == int(0.4 * 100 * 2**20)  # hot windows: 40%
    finally:
        svc.close()


def test_the_clock_can_be_pinned_on_a_simulator_only():
    """FLUX_NOW pins "now" for the whole process (tests, benchmarks, demo rehearsals):
    the demo story's day 0 is its date in Paris, and it stands still. It is honoured on
    the embedded simulator and on a simulator served without a key, refused with a
    real key (plain message), and refused when it is not an instant with an offset."""
    from datetime import UTC, date, datetime

    # 23:30 UTC on 6 Dec is 00:30 on 7 Dec in Paris: the story's day is Paris's.
    pinned = load_settings(env={"FLUX_NOW": "2026-12-06T23:30:00Z"}, secrets={})
    assert pinned.now() == datetime(2026, 12, 6, 23, 30, tzinfo=UTC) == pinned.now()
    assert pinned.demo_day == date(2026, 12, 7)
    other = load_settings(env={"FLUX_NOW": "2026-12-06T23:30:01+00:00"}, secrets={})
    assert other.source_id != pinned.source_id  # another instant: another open hour
    offset = load_settings(env={"FLUX_NOW": "2026-12-07T00:30:00+01:00"}, secrets={})
    assert offset.now() == pinned.now()
    local = load_settings(env={"FLUX_NOW": "2026-12-06T23:30:00Z",
                               "SERENICITY_API_URL": "http://127.0.0.1:9/api/v1"}, secrets={})
    assert local.now() == pinned.now() and local.demo_day is None
    with pytest.raises(ConfigError, match="only on the simulator") as refused:
        load_settings(env={"FLUX_NOW": "2026-12-06T23:30:00Z", "SERENICITY_API_KEY": "k"},
                      secrets={})
    assert "k" not in str(refused.value).split()
    for bad in ("yesterday", "2026-12-06T23:30:00", "2026-02-30T00:00Z", "1999-12-31T00:00Z",
                "9999-12-31T00:00Z"):
        with pytest.raises(ConfigError, match="FLUX_NOW"):
            load_settings(env={"FLUX_NOW": bad}, secrets={})
    # Unpinned, "now" moves on.
    free = load_settings(env={}, secrets={})
    assert free.pinned_now is None and free.now() <= free.now()
