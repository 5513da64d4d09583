"""CSV cells a spreadsheet will not run. Pure Python.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets (OWASP "CSV injection"): metadata such as `=HYPERLINK("http://…"&A1,"click")` would run when a
user opens the export. Such text gets a leading `'`, which the spreadsheet shows as text. A cell that is a plain
number (`-3`, `+1.5e3`) is no formula and is left alone.
"""

import csv
import math

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def neutralized(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose text cells cannot start a formula (unless `raw`, for data pipelines that want bytes as
    stored)."""

    def __init__(self, stream, raw: bool = False, lineterminator: str = "\r\n"):
        self._writer = csv.writer(stream, lineterminator=lineterminator)
        self._raw = raw

    def writerow(self, row):
        return self._writer.writerow(row if self._raw else [neutralized(cell) for cell in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
