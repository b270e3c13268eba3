"""The typed values of a build: a Record's fields are the schema's columns, and the values that cross a
shuffle (records, published records, samples) come back from Beam's coder and pickle as they went."""

from __future__ import annotations

import pickle
from typing import get_type_hints

import pytest
from apache_beam.coders import registry

from imagenet_captions.records import ExpectedImage, ImageRef, Published, RawRecord, Record, Sample
from imagenet_captions.schema import arrow_schema, column_names

RECORD: Record = {
    "key": "n01440764_1",
    "wnid": "n01440764",
    "label": 0,
    "photo_id": 7,
    "title": "t",
    "description": "",
    "tags": ["a"],
    "caption": "t a",
    "lang": "en",
    "lang_score": 0.5,
    "license": "4",
}
REF: ImageRef = {
    "key": "n01440764_1",
    "wnid": "n01440764",
    "path": "/a/n01440764_1.JPEG",
    "offset": None,
    "size": 3,
}


def test_a_records_fields_are_the_schemas_columns():
    assert list(get_type_hints(Record)) == column_names()
    nullable = {f.name for f in arrow_schema() if f.nullable}
    text = set(Record.__required_keys__)  # what every record carries; the writer adds the image columns
    assert text == {"key", "wnid", "label", "photo_id", "title", "description", "tags", "caption", "lang",
                    "lang_score", "license"}  # fmt: skip
    assert set(Record.__optional_keys__) <= nullable  # a text-only table leaves them null


def test_a_raw_record_is_what_the_text_stage_reads():
    fields = {"key", "wnid", "title", "tags", "description", "photo_id", "license", "owner"}
    assert set(get_type_hints(RawRecord)) == fields


@pytest.mark.parametrize(
    "value",
    [
        RECORD,
        Published(RECORD, ExpectedImage("ab" * 32, 3)),
        Sample(RECORD, REF, ExpectedImage(None, None)),
        Sample(RECORD),
    ],
    ids=["record", "published", "sample", "text-only-sample"],
)
def test_what_crosses_a_shuffle_comes_back_equal(value):
    coder = registry.get_coder(object)
    assert coder.decode(coder.encode(value)) == value
    assert pickle.loads(pickle.dumps(value)) == value


def test_a_sample_is_frozen_and_has_no_other_fields():
    sample = Sample(RECORD, REF)
    with pytest.raises(AttributeError):
        sample.image = None  # type: ignore[misc]  # the assignment under test
    with pytest.raises((AttributeError, TypeError)):
        sample.expect = {}  # type: ignore[attr-defined]  # the assignment under test: no such field
    assert sample.key == "n01440764_1"
