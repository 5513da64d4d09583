"""Where imported files come from: uploaded files, an archive (zip or tar), or a server-side directory.

Each source lists its entries up front (so progress is known) and reads one entry's bytes on demand,
refusing unsafe names (absolute, `..`, links) and enforcing size limits while reading, so a zip bomb
never expands past the limit. No Django here.
"""

import lzma
import os
import posixpath
import stat
import tarfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
# What a damaged compressed stream raises while it is read (gzip: OSError or zlib.error, bz2: OSError, xz: LZMAError).
STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
_IGNORED_PARTS = ("__MACOSX",)


class SourceError(Exception):
    """A problem with one entry (reported for that file) or, from open/list, with the whole source."""


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the source, POSIX separators
    size: int | None = None


def safe_member_name(name):
    """The normalized relative name of an archive member, or SourceError when it is unsafe."""
    if "\x00" in name:
        raise SourceError("the name contains a NUL byte")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or PurePosixPath(normalized).is_absolute() or (
        len(normalized) > 1 and normalized[1] == ":"
    ):
        raise SourceError("absolute paths are refused")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise SourceError("paths with '..' are refused")
    if not parts:
        raise SourceError("empty name")
    return "/".join(parts)


def _is_ignored(name):
    parts = name.split("/")
    return any(part in _IGNORED_PARTS for part in parts) or parts[-1].startswith(".")


def read_limited(stream, limit, what):
    """Read at most `limit` bytes; more means the entry is refused (compressed sizes can lie)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise SourceError(f"{what} expands to more than the limit of {limit} bytes")
    return data


class ArchiveSource:
    """A zip or tar archive on the local filesystem."""

    def __init__(self, path, *, max_member_bytes, max_members, max_total_bytes):
        self.path = path
        self.max_member_bytes = max_member_bytes
        self.max_members = max_members
        self.max_total_bytes = max_total_bytes
        self.total_read = 0
        self.refused = []  # (name, reason) for members refused while listing
        # Reads come from a thread pool: tar streams share one file position, and the byte budget is shared.
        self._read_lock = threading.Lock()
        self._zip = None
        self._tar = None
        self._members = {}
        try:
            if zipfile.is_zipfile(path):
                self._zip = zipfile.ZipFile(path)
            elif tarfile.is_tarfile(path):
                self._tar = tarfile.open(path, mode="r:*")
            else:
                raise SourceError("the archive is neither a zip nor a tar file (or it is damaged at its start)")
        except (zipfile.BadZipFile, tarfile.TarError, *STREAM_ERRORS) as exc:
            raise SourceError(f"the archive cannot be opened: {exc}") from None
        except UnicodeDecodeError:  # zipfile decodes a name flagged UTF-8 strictly, and stops listing there
            raise SourceError("the archive cannot be opened: a member's name is flagged UTF-8 but is not") from None

    def close(self):
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()

    def entries(self):
        """Regular-file members with safe names; unsafe ones are collected in `self.refused`, and so is every
        member after the first with a name (the first is the one read: zipfile and tarfile would read the last)."""
        raw = self._zip_members() if self._zip else self._tar_members()
        if len(raw) > self.max_members:
            raise SourceError(f"the archive has {len(raw)} members, more than the limit of {self.max_members}")
        result = []
        for name, size, kind, member in raw:
            if kind == "dir":
                continue
            try:
                safe = safe_member_name(name)
            except SourceError as exc:
                self.refused.append((name, str(exc)))
                continue
            if kind == "link":
                self.refused.append((safe, "links inside archives are refused"))
            elif kind != "file":
                self.refused.append((safe, "only regular files are imported"))
            elif _is_ignored(safe):
                continue
            elif safe in self._members:
                self.refused.append((safe, "the archive holds an earlier member with this name"))
            else:
                self._members[safe] = member
                result.append(Entry(safe, size))
        return result

    def _tar_members(self):
        try:
            members = self._tar.getmembers()
            self._tar_end_check(members)
        except (tarfile.TarError, *STREAM_ERRORS) as exc:
            raise SourceError(f"the tar archive is corrupt: {exc}") from None
        listed = []
        for member in members:
            if member.isdir():
                kind = "dir"
            elif member.issym() or member.islnk():
                kind = "link"
            elif member.isfile():
                kind = "file"
            else:
                kind = "other"
            listed.append((member.name, member.size, kind, member))
        return listed

    def _tar_end_check(self, members):
        """tarfile takes a damaged header after the first for the end of the archive, and never reaches a
        compressed stream's checksum: what follows the last member must be the end-of-archive zero blocks, and
        the stream must decompress to its end."""
        stream = self._tar.fileobj
        stream.seek(self._tar.offset)
        while chunk := stream.read(1 << 20):
            if chunk.count(0) != len(chunk):
                after = f"after its member {members[-1].name!r}" if members else "at its start"
                raise SourceError(f"the tar archive is damaged {after}, or holds data after its end (concatenated "
                                  "archives are not read): the rest cannot be read")

    def _zip_members(self):
        listed = []
        for info in self._zip.infolist():
            mode = info.external_attr >> 16
            if info.is_dir():
                kind = "dir"
            elif info.create_system == 3 and stat.S_ISLNK(mode):
                kind = "link"
            else:
                kind = "file"
            listed.append((info.filename, info.file_size, kind, info))
        return listed

    def read(self, name, max_bytes=None):
        """A member's bytes, at most `max_bytes` (default max_member_bytes) and within the archive's budget."""
        with self._read_lock:
            return self._read(name, max_bytes or self.max_member_bytes)

    def _read(self, name, max_bytes):
        member = self._members.get(name)
        if member is None:
            raise SourceError("no such file in the archive")
        budget = self.max_total_bytes - self.total_read
        if budget <= 0:
            raise SourceError(f"the archive expands to more than the limit of {self.max_total_bytes} bytes")
        limit = min(max_bytes, budget)
        try:
            if self._zip:
                with self._zip.open(member) as stream:
                    data = read_limited(stream, limit, "the file")
            else:
                stream = self._tar.extractfile(member)
                if stream is None:
                    raise SourceError("not a regular file")
                with stream:
                    data = read_limited(stream, limit, "the file")
        except (zipfile.BadZipFile, tarfile.TarError, *STREAM_ERRORS, RuntimeError, ValueError) as exc:
            raise SourceError(f"cannot read the member: {exc}") from None
        self.total_read += len(data)
        return data


class DirectorySource:
    """Files below a directory on the server; symlinks and anything outside `root` (the import source) are refused."""

    def __init__(self, root, base, *, max_member_bytes, max_members):
        self.root = Path(root).resolve()
        self.base = Path(base).resolve()
        self.max_member_bytes = max_member_bytes
        self.max_members = max_members
        self.refused = []
        if not self.base.is_relative_to(self.root):
            raise SourceError("the path is outside the import source")

    def close(self):
        pass

    def entries(self):
        result = []
        for current, dirs, files in os.walk(self.base, followlinks=False):
            dirs.sort()
            for file_name in sorted(files):
                full = Path(current) / file_name
                name = full.relative_to(self.base).as_posix()
                if _is_ignored(name):
                    continue
                if full.is_symlink():
                    self.refused.append((name, "links are refused"))
                    continue
                result.append(Entry(name, full.stat().st_size))
                if len(result) > self.max_members:
                    raise SourceError(f"the directory has more than {self.max_members} files")
        return result

    def read(self, name, max_bytes=None):
        """A file's bytes, at most `max_bytes` (default max_member_bytes)."""
        full = (self.base / name)
        if full.is_symlink() or not full.resolve().is_relative_to(self.root):
            raise SourceError("the path leaves the import source or is a link")
        try:
            with open(full, "rb") as stream:
                return read_limited(stream, max_bytes or self.max_member_bytes, "the file")
        except FileNotFoundError:
            raise SourceError("no such file") from None
        except OSError as exc:
            raise SourceError(f"cannot read the file: {exc}") from None


def find_manifest(names):
    """The manifest at the top of an archive or directory, if any."""
    for candidate in MANIFEST_NAMES:
        if candidate in names:
            return candidate
    return None


def join_relative(manifest_dir, file_name):
    """Resolve a manifest's file reference against the manifest's folder, refusing escapes."""
    joined = posixpath.normpath(posixpath.join(manifest_dir, safe_member_name(file_name)))
    if joined.startswith("../") or joined == "..":
        raise SourceError("paths with '..' are refused")
    return joined
