"""Every output escaper of ``flux_dashboard.escaping``, one output at a time; expected
strings written out by hand."""

from __future__ import annotations

import polars as pl

from flux_dashboard.escaping import (
    WORD_JOINER,
    csv_safe,
    escape_html,
    escape_markdown,
    escape_plotly,
    one_line,
)

EVIL = "<img src=x onerror=alert(1)>"


# ---------------------------------------------------------------- markdown (Streamlit)

def test_escape_markdown_neutralises_links_html_and_directives():
    out = escape_markdown("[x](javascript:alert(1)) <img src=x onerror=alert(1)> :red[hi] $x$")
    assert "<" not in out and ">" not in out
    assert "&lt;img" in out
    for raw in ("[x]", "](", ":red[", "$x$"):
        assert raw not in out
    assert out.startswith(r"\[x\]\(javascript\:alert\(1\)\)")


def test_escape_markdown_breaks_bare_links_and_takes_any_value():
    wj = WORD_JOINER
    # A word joiner after "https:", after "www" and after "@"; then ':' and '.' escaped.
    assert escape_markdown("https://x.io") == f"https\\:{wj}//x\\.io"
    assert escape_markdown("www.x.io") == f"www{wj}\\.x\\.io"
    assert escape_markdown("a@b.c") == f"a@{wj}b\\.c"
    # Numbers and exceptions are echoed too (as str(value)).
    assert escape_markdown(404) == "404"
    assert escape_markdown(ValueError("a<b & c")) == "a&lt;b &amp; c"


# ---------------------------------------------------------------- HTML (the report)

def test_escape_html_escapes_text_and_both_quotes():
    assert escape_html('<a href="x">O\'Neil & co</a>') == \
        "&lt;a href=&quot;x&quot;&gt;O&#x27;Neil &amp; co&lt;/a&gt;"
    assert escape_html(None) == "" and escape_html(3) == "3"
    assert escape_html("&lt;") == "&amp;lt;"  # & first, so escaping is not undone


# ---------------------------------------------------------------- plotly labels

def test_escape_plotly_kinds():
    assert escape_plotly(EVIL) == "&lt;img src=x onerror=alert(1)&gt;"
    assert escape_plotly("a & b") == "a &amp; b"
    assert escape_plotly("&lt;") == "&amp;lt;"  # & first, so escaping is not undone
    assert escape_plotly(None) is None
    assert escape_plotly(["<", "ok"]) == ["&lt;", "ok"]
    s = pl.Series(["<b>", None])
    assert escape_plotly(s).to_list() == ["&lt;b&gt;", None]
    out = pl.DataFrame({"n": ["x>y"]}).select(escape_plotly(pl.col("n")))
    assert out["n"].to_list() == ["x&gt;y"]


def test_escape_plotly_leaves_quotes_unlike_html():
    # plotly shows "&quot;" as such: quotes stay quotes in labels.
    assert escape_plotly('say "hi" it\'s <b>') == 'say "hi" it\'s &lt;b&gt;'
    assert escape_plotly(7) == "7"


# ---------------------------------------------------------------- CSV cells

def test_csv_safe_neutralises_formulas_and_flattens_lists():
    df = pl.DataFrame({
        "name": ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", None, "a=b", " =x", "'=x"],
        "n": list(range(-5, 6)),
        "tags": [["=cmd", "b"], ["x"], [], None, ["a", "@b"], ["-"], ["ok", "fine"], ["1"],
                 ["+"], ["a"], ["b"]],
    })
    got = csv_safe(df)
    assert got["name"].to_list() == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ok",
                                     None, "a=b", " =x", "'=x"]
    assert got["n"].to_list() == list(range(-5, 6))  # numbers are not text: left alone
    # Lists become "a, b"; a flattened list is text like any other.
    assert got["tags"].to_list() == ["'=cmd, b", "x", "", None, "a, @b", "'-", "ok, fine",
                                     "1", "'+", "a", "b"]
    assert got.columns == df.columns
    pl.read_csv(got.write_csv().encode())  # and it is writable as CSV
    assert csv_safe(pl.DataFrame({"n": [1]})).equals(pl.DataFrame({"n": [1]}))
    # The dashboard's frames are compact: names as categoricals are text too.
    cats = df.with_columns(pl.col("name").cast(pl.Categorical),
                           pl.col("tags").cast(pl.List(pl.Categorical)))
    assert csv_safe(cats)["name"].to_list() == got["name"].to_list()
    assert csv_safe(cats)["tags"].to_list() == got["tags"].to_list()
    assert "'=1+1" in csv_safe(cats).write_csv()


# ---------------------------------------------------------------- plain text lines

def test_one_line_removes_breaks_and_control_characters():
    # "\n" -> " ", the run "\r\x1b" -> one " ", the line separator -> " "; ends stripped.
    assert one_line(" evil\nname\r\x1b[31m\u2028x ") == "evil name [31m x"
    assert one_line(None) == "" and one_line(42) == "42"


def test_one_line_cuts_at_the_limit_with_an_ellipsis():
    assert one_line("abcd", limit=4) == "abcd"
    assert one_line("abcde", limit=4) == "abc…"
    assert len(one_line("x" * 100)) == 60  # the default limit
