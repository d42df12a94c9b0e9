from flux_dashboard.cli import main

raise SystemExit(main())
