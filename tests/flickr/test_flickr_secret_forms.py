"""The API key echoed by a server in a form the redactor does not see as written (a JSON ``\\u``
escape, HTML entities decimal, hex or named, doubly escaped, split by a tag, a soft hyphen or a
zero-width space) reaches no file: not the store, not ``--export``, not the build's Parquet.

Every file written is searched for the key in its bytes and in its decoded forms: JSON parsed,
Parquet cells read, and every string of those as the text cleaning would decode it (entities,
HTML, ftfy, invisible characters).
"""

from __future__ import annotations

import html
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from flickr_helpers import answer_for

from imagenet_captions.cli import main
from imagenet_captions.flickr.fake_server import FakeFlickr
from imagenet_captions.flickr.keys import Redactor, build_redactor
from imagenet_captions.flickr.store import JournalWriter, StoredAnswer
from imagenet_captions.text import TextOptions
from imagenet_captions.text.clean import clean_field

KEY = "f00dCafe5ecret_0123456789abcdef4"
#: How a server may spell the key; each is a function of the key, written into the JSON body as is.
FORMS = {
    "json_u": lambda k: "".join(f"\\u{ord(c):04x}" for c in k),
    "json_u_upper": lambda k: "".join(f"\\u{ord(c):04X}" for c in k),
    "decimal": lambda k: "".join(f"&#{ord(c)};" for c in k),
    "hex": lambda k: "".join(f"&#x{ord(c):x};" for c in k),
    "named": lambda k: k.replace("_", "&lowbar;"),
    "double": lambda k: "".join(f"&amp;#{ord(c)};" for c in k),
    "tag": lambda k: f"{k[:10]}<b></b>{k[10:]}",
    "tag_entity": lambda k: f"{k[:3]}<i>&#{ord(k[3])};</i>{k[4:]}",
    "shy": lambda k: f"{k[:5]}&shy;{k[5:]}",
    "zwsp": lambda k: f"{k[:5]}\\u200b{k[5:]}",
    "mojibake_zwsp": lambda k: f"{k[:5]}\u00e2\u20ac\u2039{k[5:]}",
    "verbatim": lambda k: k,
}
FAST = ["--qps", "150", "--timeout", "2", "--backoff-base", "0.01", "--backoff-max", "0.02",
        "--progress-every", "0.5", "--fsync-interval", "0.02"]  # fmt: skip


def echo(body: bytes, key: str) -> bytes:
    for name, form in FORMS.items():
        body = body.replace(f"@@{name}@@".encode(), form(key).encode("utf-8"))
    return body


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def decoded_forms(text: str) -> set[str]:
    """What a reader may make of a string: itself, entities decoded (repeatedly), the cleaning's text."""
    forms, unescaped = {text}, text
    for _ in range(3):
        unescaped = html.unescape(unescaped)
        forms.add(unescaped)
    forms.add(clean_field(text, keep_newlines=True))
    forms.add(clean_field(text))
    return forms


def leaks(secret: str, root: Path, *texts: str) -> list[str]:
    """Where ``secret`` appears: in ``texts`` or any file under ``root``, as bytes or decoded."""
    found = [f"output #{i}" for i, t in enumerate(texts) if any(secret in f for f in decoded_forms(t))]
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if secret.encode() in data:
            found.append(str(path))
            continue
        values: list[object] = []
        if path.suffix == ".parquet":
            values = pq.read_table(path).to_pylist()
        elif path.suffix in (".json", ".jsonl"):
            text = data.decode("utf-8", "replace")
            values = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else [json.loads(text)]
        if any(secret in form for s in strings(values) for form in decoded_forms(s)):
            found.append(f"{path} (decoded)")
    return found


def rows(build: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (build / "captions").glob("*.parquet"))


def answers_with_markers(real_answers: dict[int, dict]) -> tuple[dict[int, dict], list[str]]:
    """One photo per form: the form in its title, description and a tag; plus a failed photo whose
    message carries the key escaped."""
    template = real_answers[3743398102]
    responses, lines = {}, []
    for i, name in enumerate(FORMS):
        pid = 7_000_000_000 + i
        a = answer_for(template, pid, title=f"Title @@{name}@@ end")
        a["photo"]["description"] = {"_content": f"<p>Shot by me.</p> @@{name}@@ (thanks)"}
        a["photo"]["tags"] = {"tag": [{"raw": f"@@{name}@@", "_content": "x"}, {"raw": "fish", "_content": "fish"}]}
        a["photo"]["license"] = f"@@{name}@@"
        responses[pid] = a
        lines.append(f"n01440764_{i + 1}\thttp://farm3.static.flickr.com/2531/{pid}_e8462a8338.jpg")
    failed = 7_000_000_100
    responses[failed] = {"stat": "fail", "code": 2, "message": "Key @@json_u@@ lacks permission"}
    lines.append(f"n01440764_100\thttp://farm3.static.flickr.com/2531/{failed}_e8462a8338.jpg")
    return responses, lines


def test_the_key_echoed_in_any_form_reaches_no_file(
    real_answers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    responses, lines = answers_with_markers(real_answers)
    urls = tmp_path / "in" / "urls.txt"
    urls.parent.mkdir()
    urls.write_text("\n".join(lines) + "\n")
    out, built = tmp_path / "harvest", tmp_path / "build"
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    with FakeFlickr(responses, keys=[KEY], echo=echo) as server:
        rc = main(["harvest", "--urls", str(urls), "--out", str(out), "--endpoint", server.url, *FAST,
                   "--export", str(out / "export.json")])  # fmt: skip
    assert rc == 0
    harvested = capsys.readouterr()
    export = json.loads((out / "export.json").read_text())
    assert len(export) == len(FORMS)  # every photo was harvested, the key hidden in each
    assert all("[REDACTED]" in r["description"] and "[REDACTED]" in r["title"] for r in export)
    # The store itself holds no spelling of the key: a build that does not know the key finds none.
    monkeypatch.delenv("FLICKR_API_KEY")
    assert main(["build", "--metadata", f"responses:{out}", "--out", str(built), "--lang-backend", "none"]) == 0
    built_output = capsys.readouterr()
    assert rows(built) == len(FORMS)
    outputs = (harvested.out, harvested.err, built_output.out, built_output.err)
    assert leaks(KEY, tmp_path / "harvest", *outputs) == [] and leaks(KEY, built) == []
    # the search finds the key where it is, in each form
    probe = tmp_path / "probe"
    probe.mkdir()
    for name, form in FORMS.items():
        (probe / f"{name}.json").write_text(json.dumps({"d": json.loads(f'"{form(KEY)}"')}, ensure_ascii=False))
    assert len(leaks(KEY, probe)) == len(FORMS)


def old_store(directory: Path, real_answers: dict[int, dict]) -> None:
    """A store as a harvest before the scrub wrote it: answers as received, the key in every form."""
    responses, _ = answers_with_markers(real_answers)
    j = JournalWriter(str(directory), "old")
    for i, (pid, answer) in enumerate(sorted(responses.items())[: len(FORMS)]):
        raw = echo(json.dumps(answer, ensure_ascii=False).encode("utf-8"), KEY).decode("utf-8")
        j.append(StoredAnswer(pid, [f"n01440764_{i + 1}"], "ok", None, None, 1.7e9, 1, "old", raw)).result(timeout=10)
    j.close()


def test_the_build_and_the_export_hide_the_key_of_an_older_store(
    real_answers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The build's text cleaning redacts after each decoding step with the keys of $FLICKR_API_KEY
    (or --api-key-file); without them it cannot know what to hide, and the key leaks: the search works."""
    harvest = tmp_path / "harvest"
    old_store(harvest / "responses", real_answers)
    blind = tmp_path / "blind"
    assert main(["build", "--metadata", f"responses:{harvest}", "--out", str(blind), "--lang-backend", "none"]) == 0
    assert leaks(KEY, blind)  # the store holds the key in each form; the cleaning decodes them
    key_file = tmp_path / "keys" / "keys.txt"
    key_file.parent.mkdir()
    key_file.write_text(f"{KEY}\n")
    for name, args in (("env", []), ("file", ["--api-key-file", str(key_file)])):
        if name == "env":
            monkeypatch.setenv("FLICKR_API_KEY", KEY)
        else:
            monkeypatch.delenv("FLICKR_API_KEY")
        built = tmp_path / f"build-{name}"
        assert main(["build", "--metadata", f"responses:{harvest}", "--out", str(built), "--lang-backend", "none",
                     *args]) == 0  # fmt: skip
        assert rows(built) == len(FORMS)
        report = json.loads((built / "report.json").read_text())
        assert report["text"]["changed"]["redacted"] == len(FORMS)
        assert report["text"]["options"]["redactor"] is True
        assert leaks(KEY, built, *capsys.readouterr()) == []
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    exported = tmp_path / "exported"
    exported.mkdir()
    assert main(["harvest", "--out", str(harvest), "--export", str(exported / "export.json")]) == 0
    assert main(["harvest", "--out", str(harvest), "--diff", str(exported / "export.json"),
                 "--diff-out", str(exported / "diff.json")]) == 0  # fmt: skip
    assert len(json.loads((exported / "export.json").read_text())) == len(FORMS)
    assert leaks(KEY, exported, *capsys.readouterr()) == []


def test_a_redactor_holds_no_key_and_prints_none() -> None:
    """It is pickled into the build's pipeline and recorded in its options: digests only."""
    r = Redactor([KEY, "another-key-0123"])
    again = pickle.loads(pickle.dumps(r))
    assert KEY.encode() not in pickle.dumps(r) and KEY not in repr(r)
    assert again(f"a{KEY}b {KEY}") == "a[REDACTED]b [REDACTED]" == r(f"a{KEY}b {KEY}")
    options = TextOptions(redactor=build_redactor(environ={"FLICKR_API_KEY": KEY}))
    assert KEY not in repr(options) and KEY.encode() not in pickle.dumps(options)
    assert options.to_report()["redactor"] is True and TextOptions().to_report()["redactor"] is False
    assert build_redactor(environ={}) is None


def test_a_stored_answer_holds_no_key_in_its_bytes_or_once_parsed() -> None:
    """classify_response stores what it received unless a decoded string, or the bytes, hold the key."""
    from imagenet_captions.flickr.protocol import classify_response
    from imagenet_captions.flickr.scrub import scrub_json

    r = Redactor([KEY])
    plain = '{"stat":"ok","photo":{"id":"5","title":{"_content":"Caf\\u00e9 <b>x</b>"}}}'
    answer, _ = classify_response(5, 200, plain.encode(), None, r)
    assert answer.raw == plain  # nothing to hide: kept as received, escapes and all
    for name, form in FORMS.items():
        body = '{"stat":"ok","photo":{"id":"5","title":{"_content":"t FORM t"}}}'.replace("FORM", form(KEY))
        answer, _ = classify_response(5, 200, body.encode(), None, r)
        assert KEY not in answer.raw, name
        title = json.loads(answer.raw)["photo"]["title"]["_content"]
        assert not any(KEY in f for f in decoded_forms(title)) and "[REDACTED]" in title, name
    # A control character's escape spelling the key's first letter with what follows: no key in the bytes.
    key = "n0123456789abcdef0123456789abcde"
    text = json.dumps({"d": "\n" + key[1:]})
    assert key in text and key not in json.loads(text)["d"]
    out = scrub_json(text, json.loads(text), Redactor([key]))
    assert key not in out and json.loads(out) == {"d": " " + key[1:]}


def test_an_answer_too_deep_or_with_a_code_beyond_int32_is_retried_not_a_crash() -> None:
    """json.loads raised RecursionError, or ValueError on a number of 5,000 digits (the harvest
    failed); a code beyond the store's int32 column failed the compaction."""
    from imagenet_captions.flickr.protocol import Transient, classify_response

    r = Redactor([KEY])
    for body in (b'{"stat":"ok","photo":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 b'{"stat":"fail","code":99999999999,"message":"x"}',
                 b'{"stat":"ok","photo":{"id":"5","license":' + b"9" * 5000 + b"}}"):  # fmt: skip
        with pytest.raises(Transient):
            classify_response(5, 200, body, None, r)
