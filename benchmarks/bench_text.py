"""Benchmark of the text stage: our per-record path against a plain baseline, in the same process.

    python benchmarks/bench_text.py [--records 20000] [--baseline-records 2000] [--seed 0]

1. Throughput on one core (this process is single-threaded) over records of the generated corpus
   (``imagenet_captions.text.corpus``, a proportional sample of the full 448,896):
   * baseline, per record: BeautifulSoup(html.parser).get_text() + ftfy.fix_text() on title, each
     tag and description, caption by spaces, langdetect.detect() on the caption;
   * ours, fast backend: TextStage with fastText lid.176.ftz, every per-record filter on (camera
     titles, boilerplate, machine tags stripped; empty, length, blocklist, language allow-list with
     a threshold of 0 so nothing is language-dropped), release captions;
   * ours with the langdetect backend (same filters).
   Prints records/s for each and the ratio ours/baseline.
2. Language-identification accuracy of both backends on ``benchmarks/data/lang_short_texts.tsv``
   (2,400 short labelled texts in 16 languages, see ``make_lang_set.py``), overall and per language.
3. The mojibake gate: on the corpus's non-ASCII fields, how often ftfy.fix_text (ungated) and our
   gated fix_mojibake disagree (should be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
import warnings
from collections import Counter
from pathlib import Path

from imagenet_captions.sources.release import to_raw_record
from imagenet_captions.text import TextOptions, TextStage
from imagenet_captions.text.clean import fix_mojibake
from imagenet_captions.text.corpus import generate
from imagenet_captions.text.lang import FastTextBackend, LangdetectBackend

LANG_SET = Path(__file__).parent / "data" / "lang_short_texts.tsv"


def raw_records(n: int, seed: int) -> list[dict]:
    out = []
    for item in itertools.islice(generate(n, seed), n):
        rec, _, _ = to_raw_record(item)
        if rec is not None:
            out.append(rec)
    return out


def baseline(records: list[dict]) -> float:
    import ftfy
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)

    def clean(s: str) -> str:
        return ftfy.fix_text(BeautifulSoup(s, "html.parser").get_text()) if s else ""

    t = time.perf_counter()
    for r in records:
        title = clean(r["title"])
        tags = [clean(x) for x in r["tags"]]
        desc = clean(r["description"])
        caption = " ".join(" ".join(p.split()) for p in (title, " ".join(tags), desc) if p)
        with contextlib.suppress(LangDetectException):  # empty or letterless text
            detect(caption)
    return len(records) / (time.perf_counter() - t)


def ours(records: list[dict], backend: str) -> tuple[float, Counter]:
    options = TextOptions(
        lang_backend=backend,
        camera_titles="strip",
        boilerplate="strip",
        machine_tags="strip",
        drop_empty=True,
        min_caption_chars=1,
        max_caption_chars=100_000,
        blocklist=("nsfw", "porn"),
    )
    stage = TextStage(options)
    stage.process(records[0])  # load the model outside the timing
    reasons: Counter = Counter()
    t = time.perf_counter()
    for r in records:
        reasons[stage.process(r).reason or "kept"] += 1
    return len(records) / (time.perf_counter() - t), reasons


def lang_accuracy() -> dict:
    rows = [line.split("\t", 1) for line in LANG_SET.read_text(encoding="utf-8").splitlines()[1:]]
    out = {}
    for backend in (FastTextBackend(), LangdetectBackend(0)):
        per: dict[str, list[int]] = {}
        t = time.perf_counter()
        for lang, text in rows:
            got = backend.identify(text)
            ok = per.setdefault(lang, [0, 0])
            ok[0] += int(got is not None and got[0] == lang)
            ok[1] += 1
        us = (time.perf_counter() - t) / len(rows) * 1e6
        total = sum(v[0] for v in per.values()) / sum(v[1] for v in per.values())
        out[backend.name] = {
            "accuracy": round(total, 4),
            "us_per_text": round(us, 1),
            "per_lang": {k: round(v[0] / v[1], 3) for k, v in per.items()},
        }
    return out


def mojibake_gate(records: list[dict]) -> tuple[int, int]:
    import ftfy

    cfg = ftfy.TextFixerConfig(
        unescape_html=False,
        uncurl_quotes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        explain=False,
    )
    checked = differ = 0
    for r in records:
        for s in (r["title"], r["description"], *r["tags"]):
            if s and not s.isascii() and "\x00" not in s:
                checked += 1
                differ += ftfy.fix_text(s, cfg) != fix_mojibake(s)
    return checked, differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--baseline-records", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    records = raw_records(args.records, args.seed)
    # The baseline runs on an evenly spaced subset of the same records (it is ~100x slower).
    step = max(1, len(records) // args.baseline_records)
    base_recs = records[::step][: args.baseline_records]
    res: dict = {"records": len(records), "baseline_records": len(base_recs)}
    res["baseline_rps"] = round(baseline(base_recs))
    res["fasttext_rps"], reasons = ours(records, "fasttext")
    res["fasttext_rps"] = round(res["fasttext_rps"])
    res["fasttext_outcomes"] = dict(reasons)
    res["fasttext_on_baseline_subset_rps"] = round(ours(base_recs, "fasttext")[0])
    res["langdetect_rps"] = round(ours(records[: max(2000, len(records) // 5)], "langdetect")[0])
    res["speedup_vs_baseline"] = round(res["fasttext_on_baseline_subset_rps"] / res["baseline_rps"], 1)
    res["language_accuracy"] = lang_accuracy()
    checked, differ = mojibake_gate(records)
    res["mojibake_gate"] = {"non_ascii_fields": checked, "differ_from_ungated_ftfy": differ}
    print(f"records: {res['records']} (baseline on {res['baseline_records']} of them)")
    print(
        f"baseline (BeautifulSoup + ftfy.fix_text + langdetect.detect): {res['baseline_rps']:>8} records/s/core"
    )
    print(
        f"ours, fasttext backend, all per-record filters:               {res['fasttext_rps']:>8} records/s/core"
    )
    print(
        f"ours, fasttext, on the baseline's subset:                    {res['fasttext_on_baseline_subset_rps']:>8}"
    )
    print(
        f"ours, langdetect backend:                                     {res['langdetect_rps']:>8} records/s/core"
    )
    print(f"speed-up over the baseline (same records): {res['speedup_vs_baseline']}x")
    for name, a in res["language_accuracy"].items():
        print(f"language accuracy {name}: {a['accuracy']:.1%} ({a['us_per_text']} us/text) {a['per_lang']}")
    print(f"mojibake gate: {differ} of {checked} non-ASCII fields differ from ungated ftfy")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
