"""``python -m flux_dashboard.simulator``: serve the simulated API (see ``cli.main``)."""

from flux_dashboard.simulator.cli import main

raise SystemExit(main())
