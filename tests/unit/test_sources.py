import io
import os
import tarfile
import zipfile

import pytest

from imagestudio.datasets.sources import ArchiveSource, DirectorySource, SourceError, join_relative, safe_member_name

LIMITS = {"max_member_bytes": 1_000_000, "max_members": 100, "max_total_bytes": 5_000_000}


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def add_tar(archive, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    info.linkname = linkname
    archive.addfile(info, io.BytesIO(data) if data else None)


@pytest.mark.parametrize("name", ["/etc/passwd", "../up.png", "a/../../up.png", "C:/windows.png", "a\\..\\..\\b"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(SourceError):
        safe_member_name(name)


def test_names_are_normalized():
    assert safe_member_name("./a//b/./c.png") == "a/b/c.png"
    assert join_relative("imgs", "x/y.png") == "imgs/x/y.png"
    with pytest.raises(SourceError):
        join_relative("", "../x.png")


def test_zip_lists_safe_files_and_reports_unsafe_ones(tmp_path):
    path = write_zip(tmp_path / "a.zip", {"ok/1.png": b"1", "../evil.png": b"2", "__MACOSX/._1.png": b"3",
                                          ".hidden": b"4", "dir/": b""})
    source = ArchiveSource(path, **LIMITS)
    assert [e.name for e in source.entries()] == ["ok/1.png"]
    assert source.refused == [("../evil.png", "paths with '..' are refused")]
    assert source.read("ok/1.png") == b"1"
    with pytest.raises(SourceError):
        source.read("../evil.png")


def test_zip_bomb_member_is_refused_while_reading(tmp_path):
    path = write_zip(tmp_path / "bomb.zip", {"bomb.png": b"\0" * 3_000_000})
    assert os.path.getsize(path) < 50_000
    source = ArchiveSource(path, **LIMITS)
    source.entries()
    with pytest.raises(SourceError, match="more than the limit"):
        source.read("bomb.png")


def test_total_expansion_limit(tmp_path):
    path = write_zip(tmp_path / "many.zip", {f"{i}.png": os.urandom(900_000) for i in range(3)})
    source = ArchiveSource(path, **{**LIMITS, "max_total_bytes": 2_000_000})
    names = [e.name for e in source.entries()]
    source.read(names[0])
    source.read(names[1])
    with pytest.raises(SourceError, match="limit"):
        source.read(names[2])


def test_tar_links_and_devices_are_refused(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add_tar(archive, "good.png", b"data")
        add_tar(archive, "sym.png", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
        add_tar(archive, "hard.png", kind=tarfile.LNKTYPE, linkname="good.png")
        add_tar(archive, "fifo", kind=tarfile.FIFOTYPE)
    source = ArchiveSource(path, **LIMITS)
    assert [e.name for e in source.entries()] == ["good.png"]
    reasons = dict(source.refused)
    assert "links" in reasons["sym.png"] and "links" in reasons["hard.png"] and "regular" in reasons["fifo"]


def test_zip_symlink_member_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("link.png")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    source = ArchiveSource(path, **LIMITS)
    assert source.entries() == []
    assert "links" in source.refused[0][1]


def test_not_an_archive_and_too_many_members(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(SourceError, match="neither"):
        ArchiveSource(junk, **LIMITS)
    many = write_zip(tmp_path / "many.zip", {f"{i}.png": b"x" for i in range(5)})
    with pytest.raises(SourceError, match="members"):
        ArchiveSource(many, **{**LIMITS, "max_members": 3}).entries()


def test_directory_source_refuses_links_and_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "set" / "sub").mkdir(parents=True)
    (root / "set" / "a.png").write_bytes(b"a")
    (root / "set" / "sub" / "b.png").write_bytes(b"b")
    (tmp_path / "secret.png").write_bytes(b"s")
    os.symlink(tmp_path / "secret.png", root / "set" / "link.png")
    source = DirectorySource(root, root / "set", max_member_bytes=100, max_members=10)
    assert [e.name for e in source.entries()] == ["a.png", "sub/b.png"]
    assert source.refused == [("link.png", "links are refused")]
    with pytest.raises(SourceError):
        source.read("link.png")
    with pytest.raises(SourceError, match="outside"):
        DirectorySource(root, tmp_path, max_member_bytes=100, max_members=10)
