"""Records as the shard writer receives them (the schema's text columns and ``label``), for the shard tests."""


def record(key: str, label: int = 0) -> dict:
    return {
        "key": key,
        "wnid": key.split("_")[0],
        "label": label,
        "photo_id": None,
        "license": None,
        "title": f"title {key}",
        "description": "",
        "tags": ["a", "b"],
        "caption": f"title {key} a b",
        "lang": None,
        "lang_score": None,
    }
