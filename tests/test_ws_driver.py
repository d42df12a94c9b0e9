"""The load test's websocket driver still speaks Streamlit's protocol.

``benchmarks/load_test/ws_session.py`` drives sessions the way the browser does (the
requests recorded from Chromium); a Streamlit upgrade that changes the protocol
must fail here, not silently skew the load test. A real ``streamlit run`` of
the app (demo mode, as the load test starts it), one session, every action the
load test uses, each checked by what the server answered (the URL it wrote,
the page's title), and no traceback in the server log.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.load_test.metrics import Phase
from benchmarks.load_test.runner import DRIVERS, start_server
from benchmarks.load_test.scenario import closed_days
from benchmarks.load_test.ws_session import RunFailed


def test_ws_session_drives_every_load_test_action(tmp_path) -> None:
    days = closed_days(1)  # one closed day: a dense day loads in seconds
    server = start_server(tmp_path / "cache", tmp_path / "server.log")
    try:
        async def session() -> None:
            phase = Phase("test", 1)
            analyst = DRIVERS["ws"](0, None, server.url, days, 1, phase, (0, 0), sensor=77)
            analyst.page_id = "devices"
            await analyst.start()
            try:
                assert await analyst.open() > 0
                client = analyst.client
                assert client.query["sensor"] == "77" and client.page_hash == \
                    client.pages["Devices"]
                assert await analyst.act_toxic() > 0
                assert analyst.toxic and client.query.get("toxic") == "true"
                assert await analyst.act_direction() > 0
                assert client.query.get("dir") == "OUT"
                assert await analyst.act_direction() > 0
                assert "dir" not in client.query
                assert await analyst.act_threat() > 0
                assert analyst.threats == 1 and client.query.get("threat")
                assert await analyst.act_threat() > 0
                assert analyst.threats == 0 and not client.query.get("threat")
                assert await analyst.go_to("hunting") > 0
                assert client.page_hash == client.pages["Threat hunting"]
                assert await analyst.act_sensor() > 0
                assert analyst.sensor == 54 and client.query["sensor"] == "54"
                # A heading that never comes is a failed action, not a fast one.
                with pytest.raises(RunFailed, match="without the heading"):
                    await client.rerun("No such page title")
                with pytest.raises(RunFailed, match="no widget"):
                    client.widget("no-such-key")
            finally:
                await analyst.close()
            assert phase.errors == []

        # Its own thread and event loop: the browser tests' sync Playwright keeps a
        # loop running in this thread for the rest of the session.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, session()).result()
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()
