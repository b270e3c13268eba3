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
