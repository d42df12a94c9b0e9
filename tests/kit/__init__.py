"""The test kit: one home for what the test suites and the benchmarks share.

- ``clock``: the instant every suite pins the app to (``FLUX_TEST_NOW``), and the
  demo story and local days derived from it;
- ``procs``: free ports, the environment scrub, child processes, and a
  Streamlit server started and stopped with a health poll;
- ``apptest``: the AppTest environment, running a page, reading its charts,
  capturing its downloads, counting the simulator's flux requests;
- ``services``: real services started on loopback for a test session (Redis).
- ``flows``: hand-built flow rows and frames for the unit tests of the analyses.

Imported as ``tests.kit`` by the suites and the benchmarks alike.
"""
