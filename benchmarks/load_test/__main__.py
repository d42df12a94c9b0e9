"""``python -m benchmarks.load_test``: run the load test (see ``cli.main``)."""

from benchmarks.load_test.cli import main

raise SystemExit(main())
