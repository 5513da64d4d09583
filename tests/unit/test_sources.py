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


def tar_bytes(members, mode="w"):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=mode) as archive:
        for name, content in members:
            add_tar(archive, name, content)
    return bytearray(data.getvalue())


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_member_sharing_an_earlier_name_is_refused_and_the_first_is_the_one_read(tmp_path, mode):
    """zipfile and tarfile read a name's last member: the archive said it refused the second and imported its
    bytes under the first's name (found from outside)."""
    path = tmp_path / "twice.tar"
    path.write_bytes(tar_bytes([("a.png", b"first"), ("./a.png", b"second"), ("b.png", b"b")], mode))
    for archive_path in (path, tmp_path / "twice.zip"):
        if archive_path.suffix == ".zip":
            with zipfile.ZipFile(archive_path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
                for name, content in (("a.png", b"first"), ("a.png", b"second"), ("b.png", b"b")):
                    archive.writestr(name, content)
        source = ArchiveSource(archive_path, **LIMITS)
        assert [e.name for e in source.entries()] == ["a.png", "b.png"]
        assert source.refused == [("a.png", "the archive holds an earlier member with this name")]
        assert source.read("a.png") == b"first"


def test_a_tar_damaged_after_its_first_member_is_refused_not_cut_short(tmp_path):
    """tarfile takes a bad header after the first for the end of the archive: two of three members vanished."""
    raw = tar_bytes([("u1.png", b"1" * 600), ("u2.png", b"2" * 600), ("u3.png", b"3" * 600)])
    header = raw.find(b"u2.png")
    raw[header + 148:header + 156] = b"9999999\x00"  # the second header's checksum
    path = tmp_path / "damaged.tar"
    path.write_bytes(raw)
    with pytest.raises(SourceError, match="damaged after its member 'u1.png'"):
        ArchiveSource(path, **LIMITS).entries()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_a_compressed_stream_corrupt_in_the_middle_is_refused(tmp_path, mode):
    """A corrupt xz stream raised LZMAError, which failed the job as an internal error."""
    rng = __import__("random").Random(0)
    # incompressible and large enough that the flip lands inside a member's data, past the first compressed blocks
    raw = tar_bytes([(f"t{i}.png", rng.randbytes(200_000)) for i in range(5)], mode=mode)
    raw[len(raw) // 2] ^= 0xFF
    raw[len(raw) // 2 + 1] ^= 0xFF
    path = tmp_path / "corrupt.tgz"
    path.write_bytes(raw)
    with pytest.raises(SourceError):
        source = ArchiveSource(path, **LIMITS)
        for entry in source.entries():
            source.read(entry.name)


def test_an_intact_tar_padded_with_zero_blocks_lists_every_member(tmp_path):
    raw = tar_bytes([("a.png", b"a"), ("b.png", b"b")]) + bytes(10240)
    path = tmp_path / "padded.tar"
    path.write_bytes(raw)
    assert [e.name for e in ArchiveSource(path, **LIMITS).entries()] == ["a.png", "b.png"]


def test_a_zip_member_name_flagged_utf8_that_is_not_is_a_source_error(tmp_path):
    """zipfile raised UnicodeDecodeError, which failed the job as an internal error."""
    path = write_zip(tmp_path / "names.zip", {"XXXXX.png": b"x", "ok.png": b"y"})
    data = bytearray(path.read_bytes())
    for start in [i for i in range(len(data)) if data.startswith(b"XXXXX.png", i)]:
        data[start:start + 5] = b"\xff\xfe\x80ab"
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the UTF-8 flag (bit 11)
        for start in [i for i in range(len(data)) if data.startswith(signature, i)]:
            flags = int.from_bytes(data[start + offset:start + offset + 2], "little") | 0x800
            data[start + offset:start + offset + 2] = flags.to_bytes(2, "little")
    path.write_bytes(data)
    with pytest.raises(SourceError, match="flagged UTF-8"):
        ArchiveSource(path, **LIMITS)


def test_a_read_takes_its_own_byte_limit(tmp_path):
    path = write_zip(tmp_path / "m.zip", {"manifest.csv": b"x" * 2000})
    source = ArchiveSource(path, **{**LIMITS, "max_member_bytes": 1000})
    source.entries()
    assert len(source.read("manifest.csv", max_bytes=5000)) == 2000
    with pytest.raises(SourceError, match="limit of 1000"):
        source.read("manifest.csv")
