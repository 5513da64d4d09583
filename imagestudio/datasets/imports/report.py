"""The result of an import job: exact counts, and the files that were not simply created, with reasons."""

MAX_REPORTED = 1000  # per-file entries kept in a job result; the counts stay exact


class ImportReport:
    def __init__(self):
        self.created = 0
        self.duplicates = 0
        self.errors = 0
        self.annotations = 0
        self.stripped = 0
        self.duplicate_files = []
        self.error_files = []
        self.stripped_files = []

    def error(self, name: str, reason: str) -> None:
        self.errors += 1
        if len(self.error_files) < MAX_REPORTED:
            self.error_files.append({"file": name, "reason": reason})

    def duplicate(self, name: str, sample_id: int | None, reason: str) -> None:
        self.duplicates += 1
        if len(self.duplicate_files) < MAX_REPORTED:
            self.duplicate_files.append({"file": name, "sample_id": sample_id, "reason": reason})

    def create(self, name: str, sample_id: int, stripped_note: str) -> None:
        """A new sample; `stripped_note` says what was cut off after its image (see imaging.image_end)."""
        self.created += 1
        if not stripped_note:
            return
        self.stripped += 1
        if len(self.stripped_files) < MAX_REPORTED:
            self.stripped_files.append({"file": name, "sample_id": sample_id, "reason": stripped_note})

    def as_dict(self, total: int) -> dict:
        return {
            "total": total,
            "created": self.created,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "annotations": self.annotations,
            "stripped": self.stripped,
            "duplicate_files": self.duplicate_files,
            "error_files": self.error_files,
            "stripped_files": self.stripped_files,
            "truncated": (self.duplicates > len(self.duplicate_files) or self.errors > len(self.error_files)
                          or self.stripped > len(self.stripped_files)),
        }
