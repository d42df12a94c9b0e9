"""Demo masking: consistent keyed pseudonyms, nothing original left behind."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl
import pytest

from flux_dashboard.masking import DEFAULT_COLUMNS, Masker
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

SECRET = b"demo-secret-for-tests"

DEVICES = [
    # ip0, device_name, custom_name, netbios, mac, vendor
    ("192.168.1.20", "NAS-Synology", "NAS-Synology", "DISKSTATION", "00:11:32:aa:bb:cc",
     "Synology Incorporated"),
    ("192.168.1.31", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>",
     "PC-COMPTA", "3c:22:fb:12:34:56", "Apple, Inc."),
    ("192.168.1.42", "WORKSTATION-42", None, "WORKSTATION-42", "f4:8e:38:01:02:03",
     "Dell Technologies"),
    ("192.168.1.77", "192.168.1.77", None, None, None, None),  # unnamed device
]
REMOTES = ["8.8.8.8", "212.27.48.10", "185.220.101.1", "2a00:1450:4007:80c::200e"]


def flows() -> pl.DataFrame:
    rows = []
    for i, (ip0, name, custom, netbios, mac, vendor) in enumerate(DEVICES):
        for j, ip1 in enumerate(REMOTES):
            rows.append({
                "start_of_hour": datetime(2026, 11, 24, i + j, tzinfo=UTC),
                "ip0": ip0, "ip1": ip1, "dir": "OUT", "protocol": "TCP", "port": 443,
                "occurrences": 1, "duration_s": 1.0, "first_seen": None, "last_seen": None,
                "out_bytes": 10, "in_bytes": 20, "filtered": False, "toxic": j == 2,
                **{f: False for f in THREAT_FLAGS},
                "device_name": name, "custom_name": custom, "netbios": netbios,
                "mac_address": mac, "vendor": vendor, "is_critical": i == 0,
                "device_category": "nas" if i == 0 else None,
            })
    return pl.DataFrame(rows, schema=FLOW_SCHEMA)


def originals() -> set[str]:
    vals = {v for d in DEVICES for v in d if v is not None}
    return vals | set(REMOTES)


def test_no_original_identifier_survives():
    df = flows()
    masked = Masker(SECRET).mask_frame(df)
    assert masked.schema == df.schema and masked.height == df.height
    csv = masked.write_csv()
    for original in originals():
        assert original not in csv, original
    # Field level too: no masked cell equals any original value.
    cells = {v for c in DEFAULT_COLUMNS for v in masked[c].drop_nulls().to_list()}
    assert not cells & originals()
    # Untouched: flags, category, volumes, times, nulls.
    for col in ("is_critical", "device_category", "out_bytes", "start_of_hour", "toxic"):
        assert masked[col].equals(df[col])
    assert masked["vendor"].null_count() == df["vendor"].null_count()


def test_alias_shapes_and_unnamed_device_uses_ip_alias():
    m = Masker(SECRET)
    masked = m.mask_frame(flows())
    # private LAN addresses -> reserved class E (240.0.0.0/6): never a real host or LAN
    assert all(re.fullmatch(r"24[0-3]\.\d+\.\d+\.\d+", v) for v in masked["ip0"].to_list())
    assert all(re.fullmatch(r"2001:db8::([0-9a-f]{4}:){3}[0-9a-f]{4}", v) for v in masked["ip1"])
    assert all(re.fullmatch(r"02(:[0-9a-f]{2}){5}", v) for v in masked["mac_address"].drop_nulls())
    assert all(re.fullmatch(r"Vendor-[0-9a-f]{6}", v) for v in masked["vendor"].drop_nulls())
    unnamed = masked.filter(pl.col("ip0") == m.mask_value("local_ip", "192.168.1.77"))
    assert (unnamed["device_name"] == unnamed["ip0"]).all()
    named = masked.filter(pl.col("ip0") == m.mask_value("local_ip", "192.168.1.20"))
    assert named["device_name"].unique().to_list() == [m.mask_value("name", "NAS-Synology")]
    # custom_name equal to device_name gets the same alias (one "name" namespace).
    assert (named["custom_name"] == named["device_name"]).all()
    assert re.fullmatch(r"Device-[0-9a-f]{8}", named["device_name"][0])


def test_consistent_across_calls_and_instances_and_secret_dependent():
    df = flows()
    a1 = Masker(SECRET).mask_frame(df)
    a2 = Masker(SECRET).mask_frame(df.reverse())
    assert a1.equals(a2.reverse())
    # a sub-frame masks the same values the same way
    sub = Masker(SECRET).mask_frame(df.filter(pl.col("ip0") == "192.168.1.20"))
    assert set(sub["ip1"]) <= set(a1["ip1"])
    other = Masker(b"another-secret").mask_frame(df)
    for col in ("ip0", "ip1", "mac_address", "device_name", "vendor"):
        assert set(other[col].drop_nulls()).isdisjoint(set(a1[col].drop_nulls())), col
    assert Masker(SECRET).mask_value("public_ip", "8.8.8.8") == Masker(SECRET.decode()).mask_value(
        "public_ip", "8.8.8.8")


def test_aliases_are_a_pure_function_of_value_and_secret():
    """The alias of a value never depends on which other values share the frame."""
    m = Masker(SECRET)
    alone = m.aliases("public_ip", ["8.8.8.8"])
    crowded = m.aliases("public_ip", ["8.8.8.8", *(f"9.9.{i}.{j}" for i in range(8)
                                                   for j in range(256))])
    assert alone["8.8.8.8"] == crowded["8.8.8.8"] == m.mask_value("public_ip", "8.8.8.8")
    one = m.mask_frame(flows().head(1))
    everything = m.mask_frame(flows())
    assert one["ip0"][0] == everything["ip0"][0] and one["ip1"][0] == everything["ip1"][0]



def test_every_alias_is_the_same_alone_and_in_a_crowd():
    """Every value of crowds large enough to hold collisions of a short hash: its alias
    among them is its alias alone. (Aliases used to be short hashes with a long fallback
    for the values that collided within one frame, so a value's alias depended on the
    other values of its frame and a masked digest could call a known remote new.)"""
    m = Masker(SECRET)
    crowds = {
        "local_ip": [f"192.168.{i}.{j}" for i in range(256) for j in range(256)],
        "public_ip": [f"8.{i}.{j}.1" for i in range(100) for j in range(100)],
        "name": [f"PC-{i:05d}" for i in range(65536)],
        "vendor": [f"Vendor {i}" for i in range(4096)],
    }
    for kind, values in crowds.items():
        crowded = m.aliases(kind, values)
        differ = [v for v in values if crowded[v] != m.mask_value(kind, v)]
        assert not differ, (kind, len(differ), differ[:3])


def test_local_ips_never_share_an_alias_nor_land_on_a_lan_address():
    """A keyed permutation: a whole /16 gets 65,536 distinct class-E aliases."""
    m = Masker(SECRET)
    lan = [f"192.168.{i}.{j}" for i in range(256) for j in range(256)]
    got = m.aliases("local_ip", lan)
    assert len(set(got.values())) == len(lan)
    assert all(a.split(".")[0] in ("240", "241", "242", "243") for a in got.values())
    # other private blocks too, and distinct from each other
    others = m.aliases("local_ip", ["10.0.0.1", "172.16.0.1", "100.64.0.1", "169.254.1.1"])
    assert len(set(others.values()) | set(got.values())) == len(lan) + 4
    # non-private or IPv6 device addresses: unique-local IPv6, never their own value
    assert re.fullmatch(r"fd[0-9a-f]{2}(:[0-9a-f]{4}){3}::1", m.mask_value("local_ip", "8.8.8.8"))


def test_masked_findings_equal_unmasked_findings():
    """First-seen remotes on separately masked frames = the real result, masked."""
    from flux_dashboard.hunting import first_seen_remotes

    m = Masker(SECRET)
    df = flows()
    current = df.filter(pl.col("start_of_hour").dt.hour() >= 3)
    baseline = df.filter(pl.col("start_of_hour").dt.hour() < 3)
    real = m.mask_frame(first_seen_remotes(current, baseline))
    masked = first_seen_remotes(m.mask_frame(current), m.mask_frame(baseline))
    assert real.height > 0
    assert masked.select("ip0", "ip1").sort("ip0", "ip1").equals(
        real.select("ip0", "ip1").sort("ip0", "ip1"))


def test_ip_alias_collision_is_refused_not_merged(monkeypatch):
    m = Masker(SECRET)
    monkeypatch.setattr(m, "_alias", lambda kind, value: "2001:db8::1")
    with pytest.raises(RuntimeError, match="ambiguous"):
        m.aliases("public_ip", ["8.8.8.8", "1.1.1.1"])


def test_mask_value_sensor_and_errors():
    m = Masker(SECRET)
    assert m.mask_value("mac", None) is None
    with pytest.raises(ValueError):
        m.mask_value("colour", "x")
    with pytest.raises(ValueError):
        Masker(b"")
    s = m.mask_sensor({"id": 54, "name": "Siège Lyon", "full_name": "ACME Lyon",
                       "mac_address": "00:11:22:33:44:55", "public_ip": "81.2.69.142",
                       "local_ip": "192.168.1.2", "latitude": 45.7, "longitude": 4.8,
                       "timezone": "Europe/Paris", "hno_hours": [0, 1]})
    assert s["id"] == 54 and s["timezone"] == "Europe/Paris" and s["hno_hours"] == [0, 1]
    assert s["name"].startswith("Sensor-") and s["latitude"] is None
    assert "Lyon" not in str(s) and "81.2.69.142" not in str(s)


def test_frame_without_identifier_columns_is_unchanged():
    df = pl.DataFrame({"country": ["France"], "bytes": [1]})
    assert Masker(SECRET).mask_frame(df).equals(df)
    empty = pl.DataFrame(schema=FLOW_SCHEMA)
    assert Masker(SECRET).mask_frame(empty).schema == FLOW_SCHEMA


def test_masking_one_million_rows_keeps_every_distinct_alias():
    # Its speed is measured by the benchmark (make bench: the owners phase), not here.
    n, remotes = 1_000_000, 2_000
    df = pl.select(
        pl.format("192.168.1.{}", pl.int_range(n) % 200).alias("ip0"),
        pl.format("203.0.{}.{}", (pl.int_range(n) % remotes) // 256,
                  pl.int_range(n) % remotes % 256).alias("ip1"),
        pl.format("host-{}", pl.int_range(n) % 200).alias("device_name"),
        pl.format("aa:bb:cc:dd:00:{}", pl.int_range(n) % 200).alias("mac_address"),
        pl.format("Vendor {}", pl.int_range(n) % 20).alias("vendor"),
    )
    out = Masker(SECRET).mask_frame(df)
    assert out.height == n and out["ip1"].n_unique() == remotes
    assert out["ip0"].n_unique() == 200 and not out["ip1"].str.starts_with("203.0.").any()


def test_masked_evidence_pack_leaks_no_identifier():
    """End to end on simulated data: mask, analyse, pack; nothing original in any file."""
    import io
    import re
    import zipfile
    from datetime import UTC, datetime

    from flux_dashboard import analytics as A
    from flux_dashboard import charts as C
    from flux_dashboard import hunting as Hn
    from flux_dashboard.digest import digest
    from flux_dashboard.geo import with_country
    from flux_dashboard.report import evidence_pack
    from flux_dashboard.schema import to_frame
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    sim = Simulator(SimulatorConfig(now=lambda: now))
    start, end = datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    raw = with_country(to_frame(sim.rows(54, start, end)), "ip1")
    masker = Masker(b"pack-secret")
    df = masker.mask_frame(raw)
    sensor = masker.mask_sensor(next(s for s in sim.sensors() if s["id"] == 54))
    dg = digest(df, df, "Europe/Paris", start.date(), start.date())
    figures = {"Traffic": C.traffic_over_time_fig(A.traffic_over_time(df, "Europe/Paris")),
               "Devices": C.top_bar_fig(A.top_devices(df))}
    pack = evidence_pack(flows=df, sensor=sensor, start=start, end=end, tz="Europe/Paris",
                         filters_description="all flows", digest_text=dg.as_text(),
                         figures=figures, storylines=Hn.storylines(df), generated_at=now)
    with zipfile.ZipFile(io.BytesIO(pack)) as z:
        blob = "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    # Drop the inlined plotly.js bundle (megabytes of library code on long lines).
    blob = "\n".join(line for line in blob.splitlines() if len(line) < 100_000)
    originals = set()
    for col in ("ip0", "ip1", "mac_address", "device_name", "custom_name", "netbios", "vendor"):
        originals |= {v for v in raw[col].drop_nulls().unique().to_list() if len(v) >= 5}
    assert len(originals) > 100
    leaked = [v for v in originals if v in blob
              and re.search(r"(?<![\w.:])" + re.escape(v) + r"(?![\w.:])", blob)]
    assert leaked == []
    assert "Cabinet Martin" not in blob  # the sensor's name is masked too


def test_countries_survive_masking_in_every_aggregate():
    """Countries are looked up before masking; aggregates reuse them, not the aliases."""
    from datetime import UTC, datetime

    from flux_dashboard import analytics as A
    from flux_dashboard import hunting as Hn
    from flux_dashboard.geo import with_country
    from flux_dashboard.schema import to_frame
    from flux_dashboard.simulator import Simulator, SimulatorConfig
    from flux_dashboard.simulator.story import StoryPlan

    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    sim = Simulator(SimulatorConfig(now=lambda: now))
    # Ordinary days are quiet (day -1 may have no toxic row at all): take days -4 and
    # -3 of the planted story, which hold the C2 beacon and a brute-force wave.
    plan = StoryPlan.anchored(now)
    raw = with_country(to_frame(sim.rows(54, *plan.window(-4, -3))), "ip1")
    masked = Masker(b"geo-secret").mask_frame(raw)
    want = A.countries_summary(raw).sort("iso3", nulls_last=True)
    got = A.countries_summary(masked).sort("iso3", nulls_last=True)
    assert got["iso3"].drop_nulls().len() > 5
    assert got.select("iso3", "flows").equals(want.select("iso3", "flows"))
    assert set(A.remote_hosts(masked)["country_code"]) == set(A.remote_hosts(raw)["country_code"])
    assert (A.top_toxic_remotes(masked)["country"].drop_nulls().len()
            == A.top_toxic_remotes(raw)["country"].drop_nulls().len())
    assert (Hn.storylines(masked)["country"].drop_nulls().len()
            == Hn.storylines(raw)["country"].drop_nulls().len() > 0)
    assert plan.c2_country in set(Hn.storylines(masked)["country"])


def test_secret_file_created_once_and_reused(tmp_path):
    from flux_dashboard.masking import load_secret

    path = tmp_path / "cache" / "mask-secret"
    first = load_secret(path)
    assert len(first) == 32 and path.read_bytes() == first
    assert load_secret(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_secret(path, "from-env") == b"from-env"


@pytest.mark.parametrize("content", [b"", b"short"])
def test_empty_or_short_secret_file_is_treated_as_absent(tmp_path, content):
    """A crash or a full disk can leave the file empty: masking must still work."""
    from flux_dashboard.masking import load_secret

    path = tmp_path / "mask-secret"
    path.write_bytes(content)
    value = load_secret(path)
    assert len(value) == 32 and path.read_bytes() == value
    Masker(value).mask_value("public_ip", "8.8.8.8")  # usable
    assert load_secret(path) == value
