"""CSV cells a spreadsheet will not run. Pure Python.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets (OWASP "CSV injection"): metadata such as `=HYPERLINK("http://…"&A1,"click")` would run when a
user opens the export. Such text gets a leading `'`, which the spreadsheet shows as text. A cell that is a plain
number (`-3`, `+1.5e3`) is no formula and is left alone.
"""

import csv
import io
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
    stored), each line ended by `lineterminator`.

    The csv module quotes a cell holding a character of its own line terminator, not any line break: with "\n"
    it would leave a cell holding "\r" bare, and a reader would split the row there. So every row is formatted
    with "\r\n" (both characters quote) and given `lineterminator` as it is written.
    """

    def __init__(self, stream, raw: bool = False, lineterminator: str = "\r\n"):
        self._stream, self._raw, self._lineterminator = stream, raw, lineterminator
        self._line = io.StringIO()
        self._writer = csv.writer(self._line, lineterminator="\r\n")

    def writerow(self, row):
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow(row if self._raw else [neutralized(cell) for cell in row])
        return self._stream.write(self._line.getvalue()[:-2] + self._lineterminator)

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
