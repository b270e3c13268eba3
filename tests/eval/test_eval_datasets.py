"""Each dataset reader on a generated tree in that dataset's distributed layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagenet_captions.classes import wnid_to_label, wnids
from imagenet_captions.errors import UsageError
from imagenet_captions.eval import datasets as ds
from imagenet_captions.eval import subsets

W = wnids()
LABEL = wnid_to_label()


def test_subsets_agree_with_the_package_class_index() -> None:
    raw = subsets._subsets()
    assert raw["imagenet_wnids_sorted"] == W
    for indices, names in (
        (subsets.imagenet_r_indices(), subsets.imagenet_r_wnids()),
        (subsets.imagenet_a_indices(), subsets.imagenet_a_wnids()),
    ):
        assert len(indices) == 200 and [W[i] for i in indices] == names
    onet = subsets.objectnet_folder_to_imagenet()
    assert len(onet) == 113 and len(subsets.objectnet_imagenet_indices()) == 125
    assert len(subsets.objectnet_all_folders()) == 313
    assert onet["alarm_clock"] == (LABEL["n02708093"], LABEL["n03196217"])  # analog + digital clock


def test_imagenet_val_folder_per_wnid(tmp_path: Path, image_writer) -> None:
    for wnid in W[:3]:
        for k in range(2):
            image_writer(tmp_path / wnid / f"ILSVRC2012_val_{wnid}_{k}.JPEG")
    (tmp_path / W[0] / "notes.txt").write_text("x")
    (tmp_path / "README").write_text("x")
    s = ds.read_imagenet_val(tmp_path)
    assert len(s) == 6 and s.class_sublist is None
    assert sorted({t for t in s.targets}) == [(0,), (1,), (2,)]
    assert s.skipped == {"not_an_image": 1, "not_in_a_class_folder": 1}


def test_imagenet_val_flat_with_kaggle_csv_and_caffe_txt(tmp_path: Path, image_writer) -> None:
    flat = tmp_path / "val"
    for n in range(1, 5):
        image_writer(flat / f"ILSVRC2012_val_{n:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{W[65]} 1 2 3 4\n"
        f"ILSVRC2012_val_00000002,{W[970]} 1 2 3 4 {W[970]} 5 6 7 8\n"
        f"ILSVRC2012_val_00000003,{W[0]} 1 2 3 4\n"
        f"ILSVRC2012_val_00000099,{W[0]} 1 2 3 4\n"
    )
    s = ds.read_imagenet_val(flat)
    assert [t[0] for t in s.targets] == [65, 970, 0]
    assert s.skipped == {"no_label": 1, "labelled_but_missing": 1}

    caffe = tmp_path / "val.txt"
    caffe.write_text("".join(f"ILSVRC2012_val_{n:08d}.JPEG {n * 10}\n" for n in range(1, 5)))
    s2 = ds.read_imagenet_val(flat, caffe)
    assert [t[0] for t in s2.targets] == [10, 20, 30, 40]

    caffe.write_text("ILSVRC2012_val_00000001.JPEG cat\n")
    with pytest.raises(UsageError, match="neither a wnid nor a class index"):
        ds.read_imagenet_val(flat, caffe)


def test_imagenet_val_flat_without_labels_is_a_usage_error(tmp_path: Path, image_writer) -> None:
    image_writer(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(UsageError, match="labels file"):
        ds.read_imagenet_val(tmp_path)


def test_imagenet_v2_class_index_folders(tmp_path: Path, image_writer) -> None:
    for idx in (0, 7, 999):
        image_writer(tmp_path / str(idx) / "a.jpeg")
    s = ds.read_imagenet_v2(tmp_path)
    assert [t[0] for t in s.targets] == [0, 7, 999]
    image_writer(tmp_path / "1000" / "b.jpeg")
    with pytest.raises(UsageError, match="not classes of this dataset: 1000"):
        ds.read_imagenet_v2(tmp_path)


def test_imagenet_sketch(tmp_path: Path, image_writer) -> None:
    image_writer(tmp_path / "sketch" / W[5] / "sketch_1.JPEG")
    image_writer(tmp_path / "sketch" / W[6] / "sketch_2.png")
    s = ds.read_imagenet_sketch(tmp_path / "sketch")
    assert [t[0] for t in s.targets] == [5, 6]
    with pytest.raises(UsageError):  # the archive's parent folder is not the layout
        ds.read_imagenet_sketch(tmp_path)
    assert ds.locate(tmp_path.parent, "imagenet-sketch", {"imagenet-sketch": str(tmp_path / "sketch")}) == (
        tmp_path / "sketch"
    )


@pytest.mark.parametrize(
    ("reader", "names", "indices"),
    [
        (ds.read_imagenet_r, subsets.imagenet_r_wnids, subsets.imagenet_r_indices),
        (ds.read_imagenet_a, subsets.imagenet_a_wnids, subsets.imagenet_a_indices),
    ],
)
def test_imagenet_r_and_a_keep_their_200_classes(
    tmp_path: Path, image_writer, reader, names, indices
) -> None:
    chosen = names()[:3]
    for wnid in chosen:
        image_writer(tmp_path / wnid / "x.jpg")
    s = reader(tmp_path)
    assert [t[0] for t in s.targets] == [LABEL[w] for w in chosen]
    assert s.class_sublist == indices() and len(s.class_sublist) == 200
    outside = next(w for w in W if w not in set(names()))
    image_writer(tmp_path / outside / "y.jpg")
    with pytest.raises(UsageError, match=outside):
        reader(tmp_path)


def test_objectnet_maps_113_classes_and_counts_the_rest(tmp_path: Path, image_writer) -> None:
    images = tmp_path / "objectnet-1.0" / "images"
    image_writer(images / "alarm_clock" / "1.png")
    image_writer(images / "banana" / "2.png")
    image_writer(images / "banana" / "3.png")
    image_writer(images / "air_freshener" / "4.png")  # an ObjectNet class with no ImageNet class
    s = ds.read_objectnet(tmp_path / "objectnet-1.0")
    assert len(s) == 3 and s.border == 2
    assert s.targets[0] == (LABEL["n02708093"], LABEL["n03196217"])
    assert s.targets[1] == (LABEL["n07753592"],)
    assert s.skipped == {"objectnet_class_not_in_imagenet": 1}
    assert s.class_sublist == subsets.objectnet_imagenet_indices()
    assert ds.locate(tmp_path, "objectnet") == images
    image_writer(images / "not_a_class" / "5.png")
    with pytest.raises(UsageError, match="not_a_class"):
        ds.read_objectnet(images)


def test_empty_or_missing_roots_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        ds.read_imagenet_r(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        ds.read_imagenet_r(tmp_path / "empty")
