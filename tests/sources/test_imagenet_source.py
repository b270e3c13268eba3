import io
import tarfile
from types import SimpleNamespace

import pytest

from imagenet_captions.errors import UsageError
from imagenet_captions.sources import imagenet


def _view(listed):
    """One listing entry as (key, ref, reason): an image reference (a dict) or a Drop."""
    if isinstance(listed, dict):
        return SimpleNamespace(key=listed["key"], ref=listed, reason=None)
    return SimpleNamespace(key=listed.key, ref=None, reason=listed.reason)


def _listing_from_folder(root):
    folders, others = imagenet.list_top_level(root)
    return [_view(x) for x in others + [x for f in folders for x in imagenet.list_class_folder(f)]]


def _listing_from_tar(path):
    parts, direct = imagenet.plan_tar(path)
    return [_view(x) for x in direct + [x for part in parts for x in imagenet.list_inner_tar(part)]]


def test_folder_and_tar_give_the_same_images_and_bytes(sample_dir, sample_tar):
    from_folder = {x.key: x for x in _listing_from_folder(sample_dir / "train") if x.ref}
    from_tar = {x.key: x for x in _listing_from_tar(sample_tar) if x.ref}
    assert len(from_folder) == 81 and from_folder.keys() == from_tar.keys()
    with imagenet.ImageReader() as reader:
        for key, listed in from_tar.items():
            assert listed.ref["offset"] is not None
            assert reader.read(listed.ref) == reader.read(from_folder[key].ref), key


def test_odd_entries_are_named(tmp_path):
    train = tmp_path / "train"
    (train / "n01440764").mkdir(parents=True)
    (train / "n01440764" / "n01440764_1.JPEG").write_bytes(b"x")
    (train / "n01440764" / "IMG_1.JPEG").write_bytes(b"x")
    (train / "n01440764" / "n01443537_2.JPEG").write_bytes(b"x")  # another class's image
    (train / "n01440764" / "sub").mkdir()
    (train / "n09999999").mkdir()
    (train / "n09999999" / "n09999999_1.JPEG").write_bytes(b"x")
    (train / "holiday").mkdir()
    (train / "holiday" / "a.jpg").write_bytes(b"x")
    (train / "README").write_text("x")
    got = sorted((x.key, x.reason) for x in _listing_from_folder(tmp_path))
    assert got == [
        ("README", "not_a_class_folder"),
        ("holiday/a.jpg", "not_a_class_folder"),
        ("n01440764/IMG_1.JPEG", "bad_image_name"),
        ("n01440764/n01443537_2.JPEG", "bad_image_name"),
        ("n01440764/sub", "not_a_file"),
        ("n01440764_1", None),
        ("n09999999/n09999999_1.JPEG", "unknown_class"),
    ]


def test_tar_member_with_dotdot_is_unsafe_and_nothing_is_extracted(tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tf:
        for name in ["n01440764_1.JPEG", "../../evil.JPEG", "/abs/n01440764_2.JPEG"]:
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    outer = tmp_path / "train.tar"
    with tarfile.open(outer, "w") as tf:
        info = tarfile.TarInfo("n01440764.tar")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))
        info = tarfile.TarInfo("../escape.JPEG")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    got = sorted((x.key, x.reason) for x in _listing_from_tar(outer))
    assert got == [
        ("../../evil.JPEG", "unsafe_path"),
        ("../escape.JPEG", "unsafe_path"),
        ("/abs/n01440764_2.JPEG", "unsafe_path"),
        ("n01440764_1", None),
    ]
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before


def test_missing_and_unreadable_sources(tmp_path):
    with pytest.raises(UsageError):
        imagenet.list_top_level(tmp_path / "nope")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar" * 100)
    with pytest.raises(UsageError, match="not a readable tar"):
        imagenet.plan_tar(bad)


def _jpeg_bytes():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def test_links_in_the_folder_are_counted_and_never_followed(tmp_path):
    """A linked image file (outside the tree, a system file, inside the tree, dangling), a linked
    folder inside a class, a linked class folder and a linked other folder: each is one ``link``."""
    outside = tmp_path / "outside"
    (outside / "n01443537").mkdir(parents=True)
    (outside / "n01443537" / "n01443537_1.JPEG").write_bytes(_jpeg_bytes())
    (outside / "holiday").mkdir()
    (outside / "holiday" / "a.jpg").write_bytes(_jpeg_bytes())
    (outside / "n01440764_2.JPEG").write_bytes(_jpeg_bytes())
    cls = tmp_path / "imagenet" / "train" / "n01440764"
    cls.mkdir(parents=True)
    (cls / "n01440764_1.JPEG").write_bytes(_jpeg_bytes())
    (cls / "n01440764_2.JPEG").symlink_to(outside / "n01440764_2.JPEG")
    (cls / "n01440764_3.JPEG").symlink_to("/etc/passwd")
    (cls / "n01440764_4.JPEG").symlink_to("n01440764_1.JPEG")
    (cls / "n01440764_5.JPEG").symlink_to(tmp_path / "nowhere.JPEG")
    (cls / "sub").symlink_to(outside, target_is_directory=True)
    (cls.parent / "n01443537").symlink_to(outside / "n01443537", target_is_directory=True)
    (cls.parent / "holiday").symlink_to(outside / "holiday", target_is_directory=True)
    root = tmp_path / "imagenet"
    got = sorted((x.key, x.reason) for x in _listing_from_folder(root))
    assert got == [
        ("holiday", "link"),
        ("n01440764/n01440764_2.JPEG", "link"),
        ("n01440764/n01440764_3.JPEG", "link"),
        ("n01440764/n01440764_4.JPEG", "link"),
        ("n01440764/n01440764_5.JPEG", "link"),
        ("n01440764/sub", "link"),
        ("n01440764_1", None),
        ("n01443537", "link"),
    ]
    assert imagenet.source_wnids(str(root)) == ["n01440764"]
    parts = imagenet.plan_listing(str(root))
    listed = [x for part in parts for x in imagenet.list_part(part)]
    refs = [x for x in listed if isinstance(x, dict)]
    assert [r["key"] for r in refs] == ["n01440764_1"]
    detail = {x.key: x.detail for x in listed if not isinstance(x, dict)}
    assert detail["n01440764/n01440764_3.JPEG"] == "symbolic link to /etc/passwd"


def test_the_reader_never_reads_through_a_link_or_a_pipe(tmp_path):
    """An entry replaced after the listing (by a link to a system file, or by a pipe) is unreadable,
    not followed and not waited on."""
    import os

    cls = tmp_path / "train" / "n01440764"
    cls.mkdir(parents=True)
    for i in (1, 2, 3):
        (cls / f"n01440764_{i}.JPEG").write_bytes(_jpeg_bytes())
    refs = {x["key"]: x for x in imagenet.list_class_folder(str(cls)) if isinstance(x, dict)}
    assert sorted(refs) == ["n01440764_1", "n01440764_2", "n01440764_3"]
    (cls / "n01440764_2.JPEG").unlink()
    (cls / "n01440764_2.JPEG").symlink_to("/etc/passwd")
    (cls / "n01440764_3.JPEG").unlink()
    os.mkfifo(cls / "n01440764_3.JPEG")
    with imagenet.ImageReader() as reader:
        assert reader.read(refs["n01440764_1"]) == _jpeg_bytes()
        for key in ("n01440764_2", "n01440764_3"):
            with pytest.raises(OSError):
                reader.read(refs[key])


def _sparse_member(name: str, stored: bytes, size: int) -> bytes:
    """A GNU sparse member's header and data (tarfile cannot write one): ``stored`` bytes on disk,
    ``size`` bytes when expanded, so its data in the tar is not ``size`` bytes at its offset."""
    info = tarfile.TarInfo(name)
    info.type, info.size = tarfile.GNUTYPE_SPARSE, len(stored)
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0%011o\0" % (0, len(stored))  # one region: the stored bytes at 0
    header[483:495] = b"%011o\0" % size  # the expanded size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header[:512])
    return bytes(header) + stored + b"\0" * (-len(stored) % 512)


def test_tar_link_and_sparse_members_are_not_read_as_images(tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("n01440764_1.JPEG")
        info.size = len(_jpeg_bytes())
        tf.addfile(info, io.BytesIO(_jpeg_bytes()))
        for name, kind, target in [
            ("n01440764_2.JPEG", tarfile.SYMTYPE, "/etc/passwd"),
            ("n01440764_3.JPEG", tarfile.LNKTYPE, "n01440764_1.JPEG"),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
        tf.fileobj.write(_sparse_member("n01440764_4.JPEG", b"x" * 512, 4096))
        tf.offset += 1024
    outer = tmp_path / "train.tar"
    with tarfile.open(outer, "w") as tf:
        info = tarfile.TarInfo("n01440764.tar")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))
        for name in ("n01443537.tar", "n01443537/n01443537_1.JPEG"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    got = sorted((x.key, x.reason) for x in _listing_from_tar(outer))
    assert got == [  # an inner tar's members are named as they are in it
        ("n01440764_1", None),
        ("n01440764_2.JPEG", "link"),
        ("n01440764_3.JPEG", "link"),
        ("n01440764_4.JPEG", "not_a_file"),
        ("n01443537.tar", "link"),
        ("n01443537/n01443537_1.JPEG", "link"),
    ]
