"""Concurrent-session load test: N analysts clicking at once on one app server.

``python -m benchmarks.load_test [--sessions 10] [--minutes 3] [--baseline-sessions 1]``

1. Starts ``streamlit run app.py`` once (demo mode, ``FLUX_DEMO_DENSE=1``: sensor 54
   is the dense simulator, sensor 77 the normal small one, both in one process) on a
   free loopback port, with its own cache directory (kept between runs, so the dense
   month is loaded from the embedded simulator only once).
2. Warm-up: one browser session opens a fixed month (custom dates, ending two days
   ago so that no hour is due for a late-data recheck) for each sensor and visits
   every page, so that the measured sessions render from the cache, not load.
3. Baseline: ``--baseline-sessions`` (1) session(s) for the same duration, same
   script, then the load run with ``--sessions`` (10) sessions, spread over the two
   sensors, all driven from one asyncio loop. ``--driver ws`` (default): each session
   is a websocket speaking Streamlit's own protocol (``ws_session``: the requests a
   browser sends, the server's whole run, without the browser's rendering, which
   happens on each analyst's own computer); ``--driver browser``: Playwright contexts
   in ONE Debian Chromium (/usr/bin/chromium) on the server's machine, whose
   rendering of every page competes with the server for the same 2 cores.
4. Each session loops over analyst actions chosen by a seeded RNG: switch page in
   the sidebar navigation, direction OUT/all, "Toxic flows only" on/off, add or
   remove a threat category, switch sensor (54 <-> 77); a pause of ``--think``
   seconds between actions.

Time to settled (browser) = from the decisive input event (pointerdown/keydown,
recorded in the page) to the ``stApp`` script state going back to ``notRunning``
after the run it caused (both taken from the page's own clock by a
MutationObserver), with the page's main heading visible; (ws) from the request
sent to the end of the run it caused, with the page's title in it. The server's
RSS (process + children, from /proc/<pid>/status VmRSS) is sampled every second.

Errors: an action that fails or times out, an exception box (``stException``) on
the page after an action, a lost connection; tracebacks: the count of "Traceback"
in the server log during each phase. Targets (issue 10): p95 <= 3 s per action,
peak RSS <= 2.5 GB, zero errors, zero tracebacks. Exit status 1 when one is missed.

With ``--driver browser`` the browser runs on the same machine as the server, so
its rendering competes for the same cores: the figures are what analysts on this
machine would see, pessimistic for analysts on their own computers.

The package, in the order a run goes
------------------------------------
* ``cli``: the command line, ``run`` (also ``benchmarks.bench``'s part 5), the files.
* ``runner``: the server, its warm-up and the phases of sessions.
* ``scenario``: what an analyst does (pages, sensors, actions, limits, the month),
  and ``Analyst``, the seeded loop of actions each driver implements.
* ``ws_session``: the websocket driver (``WsAnalyst``, ``WsClient``).
* ``browser``: the browser driver (``BrowserAnalyst``), its page probes in ``browser.js``.
* ``metrics``: ``Phase`` and ``Sample``, the server's RSS and CPU.
* ``report``: percentiles, the targets checked, the Markdown and JSON.
"""
