"""Flux dashboard entrypoint: `streamlit run app.py` (or `make run`)."""

from flux_dashboard.ui import run_app

run_app()
