"""fproi_jax.results: one table value, two renderings, one writer of pages, one NaN policy."""
import json

import pytest

from fproi_jax import results

TABLE = results.Table("Table 5: groups", ["Data", "AUC"], [["Real only", "0.910"],
                                                           ["+ <GAN> & co", "n/a"]],
                      notes=["Seeds: 3.", "Protocol: test on train."])


def test_markdown_has_title_header_rule_rows_and_notes_in_order():
    assert TABLE.markdown() == (
        "## Table 5: groups\n\n| Data | AUC |\n| --- | --- |\n| Real only | 0.910 |\n"
        "| + <GAN> & co | n/a |\n\nSeeds: 3.\n\nProtocol: test on train.\n")
    assert TABLE.markdown(level=1).startswith("# Table 5: groups\n")


def test_html_escapes_every_cell_and_keeps_the_notes():
    page = TABLE.html()
    assert "<h2>Table 5: groups</h2>" in page
    assert "<tr><th>Data</th><th>AUC</th></tr>" in page
    assert "<td>+ &lt;GAN&gt; &amp; co</td>" in page
    assert page.index("<p>Seeds: 3.</p>") < page.index("<p>Protocol: test on train.</p>")


def test_a_row_of_the_wrong_width_is_refused_naming_the_table():
    with pytest.raises(ValueError, match=r"table 'T': row \('a',\) has 1 cells, the header 2"):
        results.Table("T", ["x", "y"], [["a"]])


def test_nan_is_null_and_infinities_are_strings_in_strict_json():
    value = {"auc": float("nan"), "ci": [float("-inf"), 0.5], "hd": (float("inf"),), "n": 3}
    text = results.json_text(value)
    assert json.loads(text) == {"auc": None, "ci": ["-inf", 0.5], "hd": ["inf"], "n": 3}
    assert "NaN" not in text and "Infinity" not in text


def test_write_page_writes_the_three_files_from_one_set_of_tables(tmp_path):
    figure = results.Figure("Figure 9: ROC", "classification/figure9_roc.png")
    results.write_page(tmp_path, "Comparison", "Intro.", [TABLE, figure], {"a": float("nan")})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": None}
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Comparison\n\nIntro.\n") and TABLE.markdown() in md
    page = (tmp_path / "index.html").read_text()
    assert TABLE.html() in page
    assert '<img src="classification/figure9_roc.png" alt="Figure 9: ROC">' in page
    assert page.index("</table>") < page.index("<h2>Figure 9: ROC</h2>")  # in reading order
    assert md.endswith("## Figure 9: ROC\n\n![Figure 9: ROC](classification/figure9_roc.png)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "report.md",
                                                          "summary.json"]


def test_a_summary_that_is_not_json_leaves_no_file_behind(tmp_path):
    with pytest.raises(TypeError):
        results.write_page(tmp_path, "T", "", [TABLE], {"bad": object()})
    assert list(tmp_path.iterdir()) == []
