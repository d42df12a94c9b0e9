"""Text for markdown: every value from a URL, the API or a user is shown literally."""

from __future__ import annotations

from flux_dashboard.hunting import escape_markdown


def text(value: object) -> str:
    """Escape a value for st.markdown/st.warning/st.error (HTML and markdown shown literally)."""
    return escape_markdown(str(value))
