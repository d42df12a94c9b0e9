"""``python -m flux_dashboard``: the command line (see ``cli``)."""

from flux_dashboard.cli import main

raise SystemExit(main())
