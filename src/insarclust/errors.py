"""Input errors that tell the user where the problem is and how to fix it."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input: names the file, the row/column when known, and the fix.

    Row numbers are 1-based data rows (the header is row 0), as a user sees
    them when opening the CSV in a spreadsheet minus the header line.
    """

    def __init__(self, message: str, file=None, row: int | None = None,
                 column: str | None = None, fix: str | None = None):
        self.message, self.file, self.row, self.column, self.fix = message, file, row, column, fix
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        text = (", ".join(where) + ": " if where else "") + message
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)
