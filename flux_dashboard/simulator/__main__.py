"""``python -m flux_dashboard.simulator``: serve the simulated API (see ``transports.main``)."""

from flux_dashboard.simulator.transports import main

raise SystemExit(main())
