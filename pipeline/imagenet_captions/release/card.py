"""The dataset card (``README.md``): a Hugging Face YAML header, then what a user must know.

Everything a number is said about comes from the release's own data (the build report, the Parquet
columns), never typed in, so the card cannot drift from the files beside it. The header is what the
Hub and ``datasets.load_dataset(<release dir>)`` read: its one config is the Parquet files; the tars,
when published, are loaded by naming the webdataset builder (``datasets`` chooses one builder for
all of a repository's configs, so a config of tars beside the Parquet one cannot load). The card
must never describe the image shards as free to share: ImageNet's terms follow them.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable
from typing import Any

import yaml

from imagenet_captions.classes import class_index
from imagenet_captions.layout import CAPTIONS_DIR, SHARD_DIR

IMAGENET_TERMS_URL = "https://image-net.org/download.php"
PAPER_URL = "https://arxiv.org/abs/2205.01397"
LICENSE_NAME = "flickr-owner-licences-and-imagenet-terms"
#: The minimum share of records for a language to be listed in the card's ``language`` header.
LANGUAGE_MIN_SHARE = 0.01

TEDDY = "n04399382"
TEDDY_NOTE = "The 2022 release has no record of n04399382 (teddy bear) either. "

#: Flickr's licence ids (``flickr.photos.licenses.getInfo``): name and the licence's URL.
FLICKR_LICENSES: dict[str, tuple[str, str]] = {
    "0": ("All Rights Reserved", ""),
    "1": (
        "Attribution-NonCommercial-ShareAlike License",
        "https://creativecommons.org/licenses/by-nc-sa/2.0/",
    ),
    "2": ("Attribution-NonCommercial License", "https://creativecommons.org/licenses/by-nc/2.0/"),
    "3": ("Attribution-NonCommercial-NoDerivs License", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    "4": ("Attribution License", "https://creativecommons.org/licenses/by/2.0/"),
    "5": ("Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/"),
    "6": ("Attribution-NoDerivs License", "https://creativecommons.org/licenses/by-nd/2.0/"),
    "7": ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    "8": ("United States Government Work", "http://www.usa.gov/copyright.shtml"),
    "9": ("Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "10": ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
}

BIBTEX = """@inproceedings{fang2022data,
  title         = {Data Determines Distributional Robustness in Contrastive Language Image Pre-training ({CLIP})},
  author        = {Fang, Alex and Ilharco, Gabriel and Wortsman, Mitchell and Wan, Yuhao and Shankar, Vaishaal
                   and Dave, Achal and Schmidt, Ludwig},
  booktitle     = {Proceedings of the 39th International Conference on Machine Learning (ICML)},
  series        = {Proceedings of Machine Learning Research},
  volume        = {162},
  year          = {2022},
  eprint        = {2205.01397},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2205.01397}
}"""

IMAGES_WARNING = (
    "The image shards hold ImageNet's images. ImageNet grants access only to people who accept its terms "
    f"of access ({IMAGENET_TERMS_URL}): publish the tars only on a gated or private mirror, to people who "
    "have accepted those terms."
)

#: Hugging Face's size buckets (``size_categories``), upper bounds exclusive.
_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


@dataclasses.dataclass(frozen=True)
class ReleaseStats:
    """What the card says about the data, counted from the published Parquet files."""

    records: int
    per_class: dict[str, int]  #: every one of the 1,000 wnids, zero where the release has none
    licenses: dict[str, int]  #: Flickr licence id (or "unknown" for null) -> records
    languages: dict[str, int]  #: ``lang`` -> records (empty when language identification did not run)
    empty: dict[str, int]  #: field (title, description, tags) -> records where it is empty
    with_photo_id: int


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    nullable: bool
    doc: str


def size_category(n: int) -> str:
    for bound, name in _SIZE_BUCKETS:
        if n < bound:
            return name
    return "n>1B"


def card_languages(languages: dict[str, int]) -> list[str]:
    """ISO 639-1 codes with at least LANGUAGE_MIN_SHARE of the records, most common first.

    A language identifier emits rare, noisy labels (3-letter codes, ``und``) on a few records each;
    listing them would claim a coverage the data does not have. None identified: ``multilingual``,
    since Flickr owners wrote in many languages.
    """
    total = sum(languages.values())
    codes = [
        code
        for code, n in sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))
        if len(code) == 2 and code.isalpha() and code.islower() and n >= LANGUAGE_MIN_SHARE * total
    ]
    return codes or ["multilingual"]


def card_header(manifest: dict[str, Any], stats: ReleaseStats, pretty_name: str) -> dict[str, Any]:
    """The YAML header. One config, the Parquet files, even when the tars are published.

    ``datasets`` picks one builder for a whole repository from the first config's files, so a
    second config for ``shards/*.tar`` would be read with the Parquet builder and fail; the tars are
    loaded by naming the builder (``load_dataset("webdataset", data_files=...)``), as the body says.
    """
    return {
        "pretty_name": pretty_name,
        "license": "other",
        "license_name": LICENSE_NAME,
        "license_link": IMAGENET_TERMS_URL,
        "language": card_languages(stats.languages),
        "task_categories": ["image-to-text", "zero-shot-image-classification", "text-to-image"],
        "size_categories": [size_category(stats.records)],
        "tags": ["imagenet", "flickr", "captions", "clip", "distribution-shift"],
        "source_datasets": ["imagenet-1k"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"{CAPTIONS_DIR}/*.parquet"}],
                "default": True,
            }
        ],
    }


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "n/a"


def _counts_section(build: dict[str, Any]) -> str:
    counts = build["counts"]
    rows = []
    for what in ("records", "images"):
        if what not in counts:
            continue
        rows.append((what, "input", f"{counts[what]['input']:,}"))
        rows += [(what, k, f"{v:,}") for k, v in sorted(counts[what]["outcomes"].items())]
    return table(["input", "outcome", "count"], rows)


def _name(names: dict[str, str], wnid: str) -> str:
    return names.get(wnid, "?").replace("_", " ")


def _bias_section(manifest: dict[str, Any], stats: ReleaseStats) -> str:
    names = dict(class_index())
    per = stats.per_class
    total = stats.records
    present = sorted((n for n in per.values() if n), reverse=True)
    zero = sorted(w for w, n in per.items() if n == 0)
    lines = []
    if present:
        big = max(per, key=lambda w: (per[w], w))
        small = min((w for w in per if per[w]), key=lambda w: (per[w], w))
        lines.append(
            f"- **Class imbalance.** {len(present)} of {len(per)} classes have records: from "
            f"{per[small]:,} ({small}, {_name(names, small)}) to {per[big]:,} ({big}, {_name(names, big)}) "
            f"a class, median {statistics.median(present):,.0f}; "
            f"{sum(n < 100 for n in present)} classes have fewer than 100. Weight or resample by class if a "
            "balanced class prior matters to you."
        )
    if zero:
        shown = ", ".join(f"{w} ({_name(names, w)})" for w in zero[:10])
        more = f" and {len(zero) - 10} more" if len(zero) > 10 else ""
        lines.append(
            f"- **Missing classes.** {len(zero)} ImageNet {'class has' if len(zero) == 1 else 'classes have'} "
            f"no record at all: {shown}{more}. "
            f"{TEDDY_NOTE if TEDDY in zero else ''}A model trained on this release alone has seen no caption "
            f"of {'it' if len(zero) == 1 else 'them'}."
        )
    if stats.languages:
        known = sum(stats.languages.values())
        top = sorted(stats.languages.items(), key=lambda kv: -kv[1])[:5]
        shares = ", ".join(f"{c} {_pct(n, known)}" for c, n in top)
        english = stats.languages.get("en", 0)
        lines.append(
            f"- **Languages.** The text is what owners wrote, in their languages; identified as {shares} "
            "(of the captions with a language)."
            + (
                f" English is {_pct(english, known)}: text encoders and tokenizers trained on English "
                "see the rest poorly, and the languages follow Flickr's users of the time."
                if english * 2 > known
                else ""
            )
        )
    else:
        lines.append(
            "- **Languages.** Language identification did not run for this build; the text is what owners "
            "wrote, mostly but not only English."
        )
    empty = ", ".join(f"{field} {_pct(n, total)}" for field, n in sorted(stats.empty.items()))
    lines.append(
        f"- **Missing text.** Records with an empty field: {empty}. Many titles are camera file names "
        "(IMG_1234); descriptions are often boilerplate, copyright notices or unrelated to the picture."
    )
    lines.append(
        "- **Flickr-era photos.** The photos were uploaded to Flickr before ImageNet was collected (around "
        "2008-2010) by the people who used Flickr then; places, people and objects follow those users, not "
        "the world. The text can carry personal names, places (geotags) and offensive words: nothing was "
        "removed unless the build's text options say so."
    )
    unknown = stats.licenses.get("unknown", 0)
    if unknown:
        lines.append(
            f"- **Licences unknown** for {_pct(unknown, total)} of the records: the 2022 release file does not "
            "carry Flickr's licence id; a harvested build (`imagenet-captions harvest`) does."
        )
    if not manifest["with_images"]:
        has_tars = any(s.get("tar") for s in manifest["shards"].values())
        lines.append(
            "- **No images.** This release holds the text only; the images are the user's own ImageNet copy"
            + (
                " (rebuild the shards with `imagenet-captions build --imagenet` and compare the tars with the "
                "sha256 sums in `manifest.json`)."
                if has_tars
                else " (`imagenet-captions build --imagenet` makes the shards)."
            )
        )
    return "\n".join(lines)


def _license_section(stats: ReleaseStats) -> str:
    rows = [
        (lid, name, url, f"{stats.licenses.get(lid, 0):,}", _pct(stats.licenses.get(lid, 0), stats.records))
        for lid, (name, url) in FLICKR_LICENSES.items()
    ]
    known = set(FLICKR_LICENSES) | {"unknown"}
    rows += [
        (lid, "(not a Flickr licence id)", "", f"{n:,}", _pct(n, stats.records))
        for lid, n in sorted(stats.licenses.items())
        if lid not in known
    ]
    rows.append(
        (
            "unknown",
            "not recorded (null `license`)",
            "",
            f"{stats.licenses.get('unknown', 0):,}",
            _pct(stats.licenses.get("unknown", 0), stats.records),
        )
    )
    return table(["Flickr licence id", "name", "URL", "records", "share"], rows)


def _loading_section(manifest: dict[str, Any]) -> str:
    parts = [
        "With pyarrow:\n\n```python\nimport glob\nimport pyarrow.parquet as pq\n\n"
        f'table = pq.ParquetDataset(sorted(glob.glob("<release>/{CAPTIONS_DIR}/*.parquet"))).read()\n```',
        "With 🤗 datasets, from the Parquet files or through this card's configs:\n\n```python\n"
        "from datasets import load_dataset\n\n"
        f'ds = load_dataset("parquet", data_files="<release>/{CAPTIONS_DIR}/*.parquet", split="train")\n'
        'ds = load_dataset("<release>", split="train")  # the default config of this card\n```',
    ]
    if manifest["with_images"]:
        parts.append(
            "The image shards (WebDataset: `jpg`, `txt` the caption, `json` the record, `cls` the label), "
            "with webdataset or with 🤗 datasets' webdataset builder (the card's config names the Parquet "
            "files only: `datasets` chooses one builder for all of a repository's configs):\n\n```python\n"
            "import glob\nimport webdataset as wds\nfrom datasets import load_dataset\n\n"
            f'tars = sorted(glob.glob("<release>/{SHARD_DIR}/*.tar"))\n'
            'samples = wds.WebDataset(tars, shardshuffle=False).decode("pil")\n'
            f'ds = load_dataset("webdataset", data_files="<release>/{SHARD_DIR}/*.tar", split="train")\n```'
        )
    return "\n\n".join(parts)


def render_card(
    manifest: dict[str, Any], stats: ReleaseStats, fields: list[FieldDoc], date: str, url: str
) -> str:
    """The whole README.md for a release whose manifest (without the card's own entry) is given."""
    build = manifest["build"]
    name = manifest["name"]
    header = yaml.safe_dump(card_header(manifest, stats, name), sort_keys=False, allow_unicode=True)
    n_shards = len(manifest["shards"])
    tars = [s["tar"] for s in manifest["shards"].values() if s.get("tar")]
    images_note = (
        f"**This release includes the image shards** (`{SHARD_DIR}/*.tar`, WebDataset). {IMAGES_WARNING}"
        if manifest["with_images"]
        else (
            f"The image shards are not included; their sha256 sums are in `manifest.json`, so a rebuild "
            f"from your own ImageNet copy can be checked against the publisher's ({len(tars)} tars)."
            if tars
            else "This is a text-only build: there are no image shards."
        )
    )
    text_opts = build["options"].get("text", {})
    fields_table = table(
        ["field", "type", "nullable", "meaning"],
        ((f.name, f"`{f.type}`", "yes" if f.nullable else "no", f.doc) for f in fields),
    )
    body = f"""
# {name}

Version {manifest["version"]} (made {date} by imagenet-captions {manifest["tool_version"]}). {url}

ImageNet-Captions (Fang et al., ICML 2022, [arXiv:2205.01397]({PAPER_URL})) pairs ImageNet-1k training
images with the text their Flickr owners wrote: title, description and tags. This release holds
{stats.records:,} records, one per image, keyed by the ImageNet image id (`n01440764_10026`), in
{n_shards} Parquet files under `{CAPTIONS_DIR}/`. {images_note}

## How it was built

`imagenet-captions build` from `{build["metadata"]}` into {build["num_shards"]} shards (a key's shard is
`sha1(key) mod {build["num_shards"]}`), caption style `{text_opts.get("caption_style", "?")}`. Every input is
counted once, as written or under a named reason:

{_counts_section(build)}

The build's options are in `manifest.json` (`build.options`); the same inputs and options give
byte-identical files.

## Fields

{fields_table}

## Licences

The texts belong to their Flickr owners, each under the licence the owner chose for the photo
(Flickr's licence id in the `license` column); ImageNet's terms apply to the images. Records by
licence:

{_license_section(stats)}

## Known biases and gaps

{_bias_section(manifest, stats)}

## ImageNet's terms of access

ImageNet's images are available only to people who accept ImageNet's terms of access
({IMAGENET_TERMS_URL}): non-commercial research and educational use, no redistribution except to
research associates who accept the same terms. The Parquet files hold no image bytes; image shards
may only be mirrored privately, or behind a gate, for people who have accepted those terms.

## How to load it

{_loading_section(manifest)}

Every file's size and sha256 are in `manifest.json`; `imagenet-captions download` fetches and verifies
them.

## Citation

```bibtex
{BIBTEX}
```
"""
    return f"---\n{header}---\n{body}"
