"""Every output escaper of the dashboard: one function per kind of output.

Values from the API, a link or a user (device and NetBIOS names, countries, owners,
port labels, error messages...) must show literally wherever they are written.
Each output has its own rules, so each has its own function, and nothing else in
the package escapes text:

- ``escape_markdown``: Streamlit markdown (``st.markdown``, ``st.caption``,
  ``st.error``...; pages reach it as ``ui.text``);
- ``escape_html``: HTML text and attribute values (the offline report);
- ``escape_plotly``: plotly labels and hover text, which render a subset of HTML;
- ``csv_safe``: CSV cells, so that no spreadsheet runs one as a formula;
- ``one_line``: one bounded line of plain text (digest sentences, README lines).

No Streamlit, no plotly here: strings (and polars columns for the escapers that
work on frames) in, strings out.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import polars as pl

# ---------------------------------------------------------------------------
# Markdown (Streamlit)
# ---------------------------------------------------------------------------

# Everything CommonMark lets us backslash-escape, plus ':' (Streamlit's
# :emoji: / :color[...] / :material/...: directives) and '$' (LaTeX).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$:=\"'^])")

# GFM turns bare "https://…", "http://…", "www.…" and "a@b.c" into links after the
# escapes are resolved (on the text's final characters), so no escape prevents it. A
# word joiner (U+2060, invisible, no line break) inside each pattern breaks it.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)")
WORD_JOINER = "\u2060"


def escape_markdown(value: object) -> str:
    """Any value (as ``str(value)``) rendering literally in (Streamlit) markdown.

    ``&``, ``<`` and ``>`` become HTML entities (so raw HTML never renders),
    every markdown punctuation character is backslash-escaped, so links,
    images, emphasis, directives and LaTeX from data values stay plain text,
    and bare URLs, ``www.`` names and e-mail addresses get an invisible word
    joiner, so that GFM cannot turn them into links either.
    """
    text = html.escape(str(value), quote=False)
    text = _AUTOLINK.sub(WORD_JOINER, text)
    return _MD_SPECIAL.sub(r"\\\1", text)


_CHAT_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def escape_chat(value: object) -> str:
    """A value as literal text in chat Markdown (Slack, Teams, Mattermost, Discord):
    ``& < >`` as entities (Slack's own rule, CommonMark reads them too), the characters
    that make links, emphasis, code, tables or headings backslash-escaped, and bare
    URLs and e-mail addresses broken by an invisible word joiner. Lighter than
    ``escape_markdown``: chat clients show a needless backslash as it is."""
    text = html.escape(str(value), quote=False)
    text = _AUTOLINK.sub(WORD_JOINER, text)
    return _CHAT_SPECIAL.sub(r"\\\1", text)


# ---------------------------------------------------------------------------
# HTML (the offline report)
# ---------------------------------------------------------------------------

def escape_html(value: object) -> str:
    """A value as HTML text, safe in element content and quoted attributes alike
    (``& < > " '`` escaped); None is the empty string."""
    return html.escape("" if value is None else str(value), quote=True)


# ---------------------------------------------------------------------------
# Plotly labels and hover text
# ---------------------------------------------------------------------------

def escape_plotly(value):
    """Escape ``&``, ``<`` and ``>`` so plotly shows data text literally.

    Plotly renders a subset of HTML in labels and hover text and decodes only a
    few entities, so quotes are left as they are (``&quot;`` would show as such).
    Accepts a str (None passes through), a list of them, a ``pl.Series`` or a
    ``pl.Expr`` (returned as the same kind).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, pl.Expr | pl.Series):
        s = value.cast(pl.String)
        ns = s.str
        return (
            ns.replace_all("&", "&amp;", literal=True)
            .str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True)
        )
    if isinstance(value, Sequence):
        return [escape_plotly(v) for v in value]
    return html.escape(str(value), quote=False)


# ---------------------------------------------------------------------------
# CSV cells (spreadsheets)
# ---------------------------------------------------------------------------

# A spreadsheet runs a cell that starts with one of these as a formula (tab and
# CR too: some spreadsheets strip them and read what follows).
_FORMULA_START = r"^[=+\-@\t\r]"


def csv_safe(df: pl.DataFrame) -> pl.DataFrame:
    """The frame ready for ``write_csv``: lists flattened, no cell a spreadsheet runs.

    List columns become text, ``"a, b"``. Text cells (flattened lists included)
    that start with ``= + - @``, a tab or a CR get a leading apostrophe, which
    spreadsheets show as text instead of evaluating: device and NetBIOS names
    are user-entered. Other columns are returned as they are.
    """

    def neutral(text: pl.Expr) -> pl.Expr:
        return pl.when(text.str.contains(_FORMULA_START)).then(pl.lit("'") + text).otherwise(text)

    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            exprs.append(neutral(pl.col(name).cast(pl.List(pl.String)).list.join(", "))
                         .alias(name))
        elif dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
            # The dashboard's frames hold names as categoricals (schema.compact): text.
            exprs.append(neutral(pl.col(name).cast(pl.String)).alias(name))
    return df.with_columns(exprs) if exprs else df


# ---------------------------------------------------------------------------
# Plain text lines
# ---------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def one_line(value: object, limit: int = 60) -> str:
    """A data value as one line of plain text: control characters and line breaks
    become a space, ends are stripped, and text longer than ``limit`` is cut with
    "…". None is the empty string."""
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
