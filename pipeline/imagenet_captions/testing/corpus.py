"""A deterministic generator of release-format records at the real scale and shape.

``python -m imagenet_captions.testing.corpus --out corpus.json [--records N] [--seed S]``

The official ``imagenet_captions.json`` is not available here, so the text stage is measured on a
stand-in with the release's *counts* and Flickr's known *messiness*:

* **Counts (exact).** 448,896 records over 999 classes, each class with exactly its count in the
  release (``imagenet_captions/text/data/class_frequency_incaps_imagenet_ori.txt``, from Wen et al.
  2024, see ``text/data/SOURCES.md``); per class exactly the release's number of non-empty titles, tags and
  descriptions (the ``title_only``/``tags_only``/``description_only`` files; totals 443,012 /
  408,671 / 267,848). Where a class's pairwise counts (``no_title``: tags or description, ...) are
  consistent, the overlaps of the three fields match them too; for the ~100 classes where they are
  not, the overlaps come from a correlated ranking instead (marginals stay exact). With
  ``--records N`` the classes are scaled down proportionally (largest remainder), rates kept.
* **Records.** ``{"filename": "<wnid>_<n>.JPEG", "title", "tags", "description", "wnid"}`` as in the
  release, plus an ``owner`` (the release has none; harvested data does, and the owner
  near-duplicate filter needs it). Keys are unique; ``n`` is drawn per class.
* **Languages, by owner** (an owner writes in one language): en 60%, de 7%, fr 6%, es 5%, it 4%,
  nl 3%, pt 3%, ja 2.5%, zh 2%, ru 2%, pl 1.5%, sv 1%, ko 1%, tr 1%, ar 0.5%, he 0.5%. Text is
  assembled from small hand-written vocabularies and sentences per language (below) and the
  class's English name.
* **Mess, in stated proportions of the records that have the field:** titles: 8% camera file names
  (IMG_4711, DSC00023, ...), 1% with HTML entities; tags: 4% of tag lists carry machine tags
  (``geo:lat=``, ``upload:by=flickrmobile``, ...); descriptions: 12% HTML (links with
  ``rel="nofollow"``, ``<br />``, ``<b>``, 0.5% with ``<script>``/``<style>``), 8% entities (of which a
  quarter doubly escaped, ``&amp;quot;``), 6% a boilerplate line ("Uploaded with ...",
  "© 2009 All rights reserved"), 1.5% of non-ASCII descriptions as mojibake (UTF-8 read as
  cp1252), 0.5% zero-width spaces, 0.05% NUL bytes, 0.01% lone surrogates; 10% of owners paste one
  description on every photo they describe (half of those vary it slightly: near-duplicates).
* **Lengths:** short titles, descriptions with a long tail (0.01% of 5-15 kB), a few to a few
  dozen tags per record; the percentiles they come out at after cleaning are measured on the full
  corpus and tabled in ``docs/text.md`` ("The full-scale corpus").

Same ``--seed`` and ``--records``: byte-identical output. Records are written as they are made
(one class at a time), so memory stays flat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from imagenet_captions.classes import class_index

FREQ_FILES = {
    "all": "class_frequency_incaps_imagenet_ori.txt",
    "title": "class_frequency_incaps_title_only_imagenet_ori.txt",
    "tags": "class_frequency_incaps_tags_only_imagenet_ori.txt",
    "description": "class_frequency_incaps_description_only_imagenet_ori.txt",
    "tags_or_description": "class_frequency_incaps_no_title_imagenet_ori.txt",
    "title_or_description": "class_frequency_incaps_no_tags_imagenet_ori.txt",
    "title_or_tags": "class_frequency_incaps_no_description_imagenet_ori.txt",
}
RELEASE_TOTALS = {"all": 448_896, "title": 443_012, "tags": 408_671, "description": 267_848}

LANG_SHARES: tuple[tuple[str, float], ...] = (
    ("en", 0.60), ("de", 0.07), ("fr", 0.06), ("es", 0.05), ("it", 0.04), ("nl", 0.03), ("pt", 0.03),
    ("ja", 0.025), ("zh", 0.02), ("ru", 0.02), ("pl", 0.015), ("sv", 0.01), ("ko", 0.01), ("tr", 0.01),
    ("ar", 0.005), ("he", 0.005),
)  # fmt: skip
assert abs(sum(share for _, share in LANG_SHARES) - 1.0) < 1e-9
N_OWNERS = 60_000

# Per language: words for titles and tags, and sentences for descriptions. Hand-written for this
# generator (everyday photo vocabulary); "{c}" is replaced by the class's English name.
VOCAB: dict[str, tuple[list[str], list[str]]] = {
    "en": (
        ["sunset", "lake", "my", "dog", "holiday", "summer", "winter", "garden", "beach", "zoo", "museum", "park", "trip", "family", "city", "street", "old", "beautiful", "little", "big", "morning", "evening", "river", "mountain", "friends", "walk", "weekend"],
        ["A {c} we saw on our trip to the coast.", "Taken in the garden this morning, the light was lovely.",
         "My first attempt at photographing a {c}.", "We spent the whole afternoon at the museum.",
         "One of my favourite pictures from last summer.", "The kids loved it, they want to go back next year.",
         "Found this {c} on a walk along the river.", "Not the sharpest shot but I like the colours.",
         "This was taken with my old camera, before it broke.", "Thanks for all the comments and faves!"],
    ),
    "de": (
        ["Sonnenuntergang", "See", "Hund", "Urlaub", "Sommer", "Winter", "Garten", "Strand", "Tierpark", "Museum", "Stadt", "Straße", "alt", "schön", "klein", "groß", "Morgen", "Abend", "Fluss", "Berge", "Freunde", "Spaziergang", "Wochenende"],
        ["Aufgenommen im Garten heute Morgen, das Licht war wunderbar.", "Ein schöner Tag am See mit der ganzen Familie.",
         "Mein erster Versuch, so etwas zu fotografieren.", "Wir waren den ganzen Nachmittag im Museum.",
         "Eines meiner Lieblingsbilder vom letzten Sommer.", "Die Kinder fanden es toll und wollen nächstes Jahr wieder hin.",
         "Gefunden bei einem Spaziergang am Fluss.", "Nicht ganz scharf, aber die Farben gefallen mir."],
    ),
    "fr": (
        ["coucher", "de", "soleil", "lac", "chien", "vacances", "été", "hiver", "jardin", "plage", "zoo", "musée", "ville", "rue", "vieux", "beau", "petit", "grand", "matin", "soir", "rivière", "montagne", "amis", "promenade"],
        ["Prise dans le jardin ce matin, la lumière était magnifique.", "Une belle journée au bord du lac avec toute la famille.",
         "Ma première tentative de photographier un animal comme celui-ci.", "Nous avons passé tout l'après-midi au musée.",
         "Une de mes photos préférées de l'été dernier.", "Les enfants ont adoré, ils veulent y retourner l'année prochaine.",
         "Trouvé pendant une promenade le long de la rivière.", "Pas très nette mais j'aime beaucoup les couleurs."],
    ),
    "es": (
        ["atardecer", "lago", "perro", "vacaciones", "verano", "invierno", "jardín", "playa", "zoológico", "museo", "ciudad", "calle", "viejo", "bonito", "pequeño", "grande", "mañana", "tarde", "río", "montaña", "amigos", "paseo"],
        ["Tomada en el jardín esta mañana, la luz era preciosa.", "Un día estupendo en el lago con toda la familia.",
         "Mi primer intento de fotografiar algo así.", "Pasamos toda la tarde en el museo.",
         "Una de mis fotos favoritas del verano pasado.", "A los niños les encantó, quieren volver el año que viene.",
         "Lo encontramos durante un paseo junto al río.", "No está muy nítida pero me gustan los colores."],
    ),
    "it": (
        ["tramonto", "lago", "cane", "vacanze", "estate", "inverno", "giardino", "spiaggia", "zoo", "museo", "città", "strada", "vecchio", "bello", "piccolo", "grande", "mattina", "sera", "fiume", "montagna", "amici", "passeggiata"],
        ["Scattata in giardino stamattina, la luce era bellissima.", "Una bella giornata al lago con tutta la famiglia.",
         "Il mio primo tentativo di fotografare qualcosa del genere.", "Abbiamo passato tutto il pomeriggio al museo.",
         "Una delle mie foto preferite dell'estate scorsa.", "I bambini si sono divertiti moltissimo.",
         "Trovato durante una passeggiata lungo il fiume.", "Non è molto nitida ma mi piacciono i colori."],
    ),
    "nl": (
        ["zonsondergang", "meer", "hond", "vakantie", "zomer", "winter", "tuin", "strand", "dierentuin", "museum", "stad", "straat", "oud", "mooi", "klein", "groot", "ochtend", "avond", "rivier", "bergen", "vrienden", "wandeling"],
        ["Vanochtend in de tuin genomen, het licht was prachtig.", "Een mooie dag aan het meer met de hele familie.",
         "Mijn eerste poging om zoiets te fotograferen.", "We hebben de hele middag in het museum doorgebracht.",
         "Een van mijn favoriete foto's van afgelopen zomer.", "De kinderen vonden het geweldig.",
         "Gevonden tijdens een wandeling langs de rivier.", "Niet helemaal scherp maar de kleuren zijn mooi."],
    ),
    "pt": (
        ["pôr", "do", "sol", "lago", "cão", "férias", "verão", "inverno", "jardim", "praia", "zoológico", "museu", "cidade", "rua", "velho", "bonito", "pequeno", "grande", "manhã", "tarde", "rio", "montanha", "amigos", "passeio"],
        ["Tirada no jardim esta manhã, a luz estava linda.", "Um dia maravilhoso no lago com toda a família.",
         "A minha primeira tentativa de fotografar algo assim.", "Passámos a tarde inteira no museu.",
         "Uma das minhas fotografias preferidas do verão passado.", "As crianças adoraram, querem voltar no próximo ano.",
         "Encontrado durante um passeio junto ao rio.", "Não está muito nítida mas gosto das cores."],
    ),
    "ja": (
        ["夕日", "湖", "犬", "旅行", "夏", "冬", "庭", "海", "動物園", "博物館", "公園", "街", "古い", "綺麗", "小さい", "朝", "夜", "川", "山", "友達", "散歩", "週末"],
        ["今朝、庭で撮影しました。光がとてもきれいでした。", "家族みんなで湖に行きました。", "初めてこういう写真を撮ってみました。",
         "午後はずっと博物館にいました。", "去年の夏のお気に入りの一枚です。", "子供たちはとても喜んでいました。"],
    ),
    "zh": (
        ["日落", "湖", "狗", "旅行", "夏天", "冬天", "花园", "海滩", "动物园", "博物馆", "公园", "城市", "街道", "老", "美丽", "小", "早上", "晚上", "河", "山", "朋友", "散步"],
        ["今天早上在花园里拍的，光线非常好。", "和家人一起在湖边度过了美好的一天。", "第一次尝试拍这样的照片。",
         "我们整个下午都在博物馆里。", "这是我去年夏天最喜欢的照片之一。", "孩子们非常喜欢，明年还想再去。"],
    ),
    "ru": (
        ["закат", "озеро", "собака", "отпуск", "лето", "зима", "сад", "пляж", "зоопарк", "музей", "город", "улица", "старый", "красивый", "маленький", "большой", "утро", "вечер", "река", "горы", "друзья", "прогулка"],
        ["Снято сегодня утром в саду, свет был чудесный.", "Прекрасный день на озере со всей семьёй.",
         "Моя первая попытка сфотографировать что-то подобное.", "Мы провели весь день в музее.",
         "Одна из моих любимых фотографий прошлого лета.", "Детям очень понравилось, хотят поехать ещё раз."],
    ),
    "pl": (
        ["zachód", "słońca", "jezioro", "pies", "wakacje", "lato", "zima", "ogród", "plaża", "zoo", "muzeum", "miasto", "ulica", "stary", "piękny", "mały", "duży", "rano", "wieczór", "rzeka", "góry", "przyjaciele", "spacer"],
        ["Zrobione dziś rano w ogrodzie, światło było piękne.", "Wspaniały dzień nad jeziorem z całą rodziną.",
         "Moja pierwsza próba sfotografowania czegoś takiego.", "Spędziliśmy całe popołudnie w muzeum.",
         "Jedno z moich ulubionych zdjęć z zeszłego lata.", "Dzieciom bardzo się podobało."],
    ),
    "sv": (
        ["solnedgång", "sjö", "hund", "semester", "sommar", "vinter", "trädgård", "strand", "djurpark", "museum", "stad", "gata", "gammal", "vacker", "liten", "stor", "morgon", "kväll", "älv", "fjäll", "vänner", "promenad"],
        ["Tagen i trädgården i morse, ljuset var underbart.", "En härlig dag vid sjön med hela familjen.",
         "Mitt första försök att fotografera något sådant.", "Vi tillbringade hela eftermiddagen på museet.",
         "En av mina favoritbilder från förra sommaren.", "Barnen tyckte att det var jättekul."],
    ),
    "ko": (
        ["일몰", "호수", "강아지", "여행", "여름", "겨울", "정원", "해변", "동물원", "박물관", "공원", "도시", "거리", "오래된", "아름다운", "작은", "아침", "저녁", "강", "산", "친구", "산책"],
        ["오늘 아침 정원에서 찍었어요. 빛이 정말 예뻤어요.", "가족과 함께 호수에서 멋진 하루를 보냈습니다.",
         "이런 사진은 처음 찍어 봤어요.", "오후 내내 박물관에 있었어요.", "작년 여름에 찍은 가장 좋아하는 사진입니다."],
    ),
    "tr": (
        ["gün", "batımı", "göl", "köpek", "tatil", "yaz", "kış", "bahçe", "plaj", "hayvanat", "bahçesi", "müze", "şehir", "sokak", "eski", "güzel", "küçük", "büyük", "sabah", "akşam", "nehir", "dağ", "arkadaşlar", "yürüyüş"],
        ["Bu sabah bahçede çektim, ışık harikaydı.", "Bütün aileyle gölde güzel bir gün geçirdik.",
         "Böyle bir şeyi ilk kez fotoğraflamaya çalıştım.", "Bütün öğleden sonrayı müzede geçirdik.",
         "Geçen yazdan en sevdiğim fotoğraflardan biri."],
    ),
    "ar": (
        ["غروب", "بحيرة", "كلب", "عطلة", "صيف", "شتاء", "حديقة", "شاطئ", "متحف", "مدينة", "شارع", "قديم", "جميل", "صغير", "كبير", "صباح", "مساء", "نهر", "جبل", "أصدقاء"],
        ["التقطت هذه الصورة في الحديقة هذا الصباح.", "يوم جميل على البحيرة مع كل العائلة.",
         "قضينا فترة ما بعد الظهر كلها في المتحف.", "واحدة من صوري المفضلة من الصيف الماضي."],
    ),
    "he": (
        ["שקיעה", "אגם", "כלב", "חופשה", "קיץ", "חורף", "גן", "חוף", "גן", "חיות", "מוזיאון", "עיר", "רחוב", "ישן", "יפה", "קטן", "גדול", "בוקר", "ערב", "נהר", "הר", "חברים", "טיול"],
        ["צולם הבוקר בגינה, האור היה נפלא.", "יום יפה באגם עם כל המשפחה.",
         "בילינו את כל אחר הצהריים במוזיאון.", "אחת התמונות האהובות עליי מהקיץ שעבר."],
    ),
}  # fmt: skip

PLACES = [
    "Berlin",
    "Paris",
    "London",
    "Tokyo",
    "Amsterdam",
    "Barcelona",
    "Roma",
    "Praha",
    "Wien",
    "Zürich",
    "Oslo",
    "Boston",
    "Chicago",
    "Sydney",
]
CAMERAS = [
    "canon",
    "nikon",
    "sony",
    "olympus",
    "pentax",
    "fujifilm",
    "panasonic",
    "leica",
    "iphone",
    "eos",
    "d70",
    "d300",
    "5d",
    "40d",
]
MACHINE_TAGS = (
    "geo:lat={lat}",
    "geo:lon={lon}",
    "upload:by=flickrmobile",
    "flickriosapp:filter=nofilter",
    "camera:make={cam}",
    "exif:iso_speed={iso}",
)
CAMERA_TITLES = (
    "IMG_{n:04d}",
    "DSC{n:05d}",
    "DSCN{n:04d}",
    "P{n:07d}",
    "_MG_{n:04d}",
    "DSC_{n:04d}",
    "100_{n:04d}",
)
BOILERPLATE = (
    "Uploaded with Flickr Mobile",
    "Uploaded with the Flickr Uploadr",
    "Sent from my iPhone",
    "© {y} All rights reserved",
    "All rights reserved. Please do not use without my permission.",
    "Copyright {y} by me",
    "View large on black",
)


def _freqs(name: str) -> list[int]:
    text = (
        resources.files("imagenet_captions.text")
        .joinpath("data", FREQ_FILES[name])
        .read_text(encoding="utf-8")
    )
    counts = [int(line.rsplit("\t", 1)[1]) for line in text.splitlines() if line.strip()]
    if len(counts) != 1000:
        raise ValueError(f"{FREQ_FILES[name]}: expected 1000 classes, found {len(counts)}")
    return counts


def _scale(counts: list[int], total: int) -> list[int]:
    """Largest-remainder scaling of ``counts`` to sum exactly ``total``."""
    full = sum(counts)
    if total >= full:
        return list(counts)
    raw = [c * total / full for c in counts]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def class_plan(records: int | None = None) -> list[dict[str, int]]:
    """Per class (label order): n, and how many records have title, tags, description, and each
    Venn region. Exact release counts when ``records`` is None or the full size."""
    f = {k: _freqs(k) for k in FREQ_FILES}
    full = sum(f["all"])
    n_per_class = f["all"] if records is None or records >= full else _scale(f["all"], records)
    plan = []
    for c in range(1000):
        N = n_per_class[c]
        if f["all"][c] == N:
            T, G, D = f["title"][c], f["tags"][c], f["description"][c]
            unions = (f["title_or_tags"][c], f["title_or_description"][c], f["tags_or_description"][c])
        else:  # scaled: keep each field's rate, drop the pairwise unions
            base = max(1, f["all"][c])
            T, G, D = (round(f[k][c] * N / base) for k in ("title", "tags", "description"))
            unions = None
        plan.append({"n": N, "title": T, "tags": G, "description": D, "unions": unions})  # type: ignore[dict-item]
    if records is not None and records < full:  # fix rounding so the field totals scale exactly too
        for k in ("title", "tags", "description"):
            target = round(RELEASE_TOTALS[k] * records / full)
            diff = target - sum(p[k] for p in plan)
            step = 1 if diff > 0 else -1
            i = 0
            while diff:
                p = plan[i % 1000]
                if 0 <= p[k] + step <= p["n"]:
                    p[k] += step
                    diff -= step
                i += 1
    return plan


def _regions(p: dict[str, Any], rng: random.Random) -> list[tuple[bool, bool, bool]]:
    """(has title, has tags, has description) for each record of a class, in random order."""
    N, T, G, D = p["n"], p["title"], p["tags"], p["description"]
    if p["unions"] is not None:
        tg_u, td_u, gd_u = p["unions"]
        TG, TD, GD = T + G - tg_u, T + D - td_u, G + D - gd_u
        S = T + G + D - TG - TD - GD
        lo = max(0, TG + TD - T, TG + GD - G, TD + GD - D)
        hi = min(TG, TD, GD, N - S)
        if lo <= hi and min(TG, TD, GD) >= 0:
            x = hi  # the fewest records with no text at all
            counts = {
                (True, True, True): x,
                (True, True, False): TG - x,
                (True, False, True): TD - x,
                (False, True, True): GD - x,
                (True, False, False): T - TG - TD + x,
                (False, True, False): G - TG - GD + x,
                (False, False, True): D - TD - GD + x,
                (False, False, False): N - S - x,
            }
            if all(v >= 0 for v in counts.values()):
                out = [k for k, v in counts.items() for _ in range(v)]
                rng.shuffle(out)
                return out
    # Correlated ranking: a record "rich" in text tends to have every field; marginals exact.
    score = [rng.random() for _ in range(N)]

    def top(k: int) -> set[int]:
        noisy = sorted(range(N), key=lambda i: score[i] + rng.random() * 0.8, reverse=True)
        return set(noisy[:k])

    t, g, d = top(T), top(G), top(D)
    return [(i in t, i in g, i in d) for i in range(N)]


def _owner_lang(owner: int) -> str:
    h = int.from_bytes(hashlib.blake2b(f"lang{owner}".encode(), digest_size=8).digest(), "big") / 2**64
    acc = 0.0
    for lang, share in LANG_SHARES:
        acc += share
        if h < acc:
            return lang
    return "en"


def _owner_paste(owner: int) -> tuple[str, bool] | None:
    """The description an owner pastes on every photo (10% of owners), and whether they vary it."""
    r = random.Random(f"paste{owner}")
    if r.random() >= 0.10:
        return None
    lang = _owner_lang(owner)
    words, sentences = VOCAB[lang]
    text = " ".join(r.sample(sentences, min(3, len(sentences)))).replace("{c}", words[0])
    text += f" {r.choice(PLACES)} {r.randint(2004, 2011)}."
    return text, r.random() < 0.5


def _title(rng: random.Random, lang: str, cname: str) -> str:
    words, _ = VOCAB[lang]
    u = rng.random()
    if u < 0.08:
        return rng.choice(CAMERA_TITLES).format(n=rng.randint(1, 9999999 if rng.random() < 0.2 else 9999))
    parts = rng.sample(words, rng.randint(1, 3))
    if lang == "en" or rng.random() < 0.3:
        parts.insert(rng.randint(0, len(parts)), cname)
    if rng.random() < 0.2:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.1:
        parts.append(str(rng.randint(2004, 2011)))
    sep = "" if lang in ("ja", "zh") and rng.random() < 0.7 else " "
    title = sep.join(parts)
    if rng.random() < 0.3:
        title = title[:1].upper() + title[1:]
    if u > 0.99:
        title = title.replace(" ", " &amp; ", 1) if " " in title else title + " &quot;2&quot;"
    return title


def _tags(rng: random.Random, lang: str, cname: str) -> list[str]:
    words, _ = VOCAB[lang]
    n = min(40, max(1, int(rng.lognormvariate(1.9, 0.8))))
    pool = words + cname.lower().split() + [p.lower() for p in PLACES[:6]] + CAMERAS
    tags = [rng.choice(pool) for _ in range(n)]
    if rng.random() < 0.04:
        for _ in range(rng.randint(1, 3)):
            tags.append(
                rng.choice(MACHINE_TAGS).format(
                    lat=round(rng.uniform(-60, 70), 6),
                    lon=round(rng.uniform(-180, 180), 6),
                    cam=rng.choice(CAMERAS),
                    iso=rng.choice((100, 200, 400, 800)),
                )
            )
    return tags


def _mojibake(s: str) -> str:
    try:
        return s.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        return s.encode("utf-8").decode("latin-1")


def _description(rng: random.Random, lang: str, cname: str, owner: int) -> str:
    paste = _owner_paste(owner)
    if paste is not None and rng.random() < 0.9:
        text, varies = paste
        if varies and rng.random() < 0.5:
            text = (
                text.replace(".", "!", 1) if rng.random() < 0.5 else text + " " + rng.choice(VOCAB[lang][0])
            )
        return text
    words, sentences = VOCAB[lang]
    u = rng.random()
    if u < 0.35:
        n_sent = 1
    elif u < 0.99:
        n_sent = 1 + min(30, int(rng.expovariate(0.45)))
    else:
        n_sent = rng.randint(30, 120)
    text = " ".join(rng.choice(sentences) for _ in range(n_sent)).replace("{c}", cname)
    if rng.random() < 0.0001:
        text = "\n".join([text] * rng.randint(20, 80))  # a rare 5-20 kB description
    # ---- mess ----
    if rng.random() < 0.12:
        r = rng.random()
        place = rng.choice(PLACES)
        if r < 0.4:
            text = f'{text}<br />\n<a href="http://www.flickr.com/photos/x/{rng.randint(1, 10**9)}/" rel="nofollow">{place}</a>'
        elif r < 0.7:
            text = text.replace(". ", ".<br /><br />\n", 2)
            text = f"<b>{place}</b> {text}"
        elif r < 0.96:
            text = f'<i>{text}</i> <a href="http://{place.lower()}.example.org">{place}</a>'
        else:
            text += "<script>document.write('x')</script><style>.a{color:red}</style>"
    if rng.random() < 0.08:
        ent = rng.choice(["&amp;", "&quot;", "&#039;", "&nbsp;", "&gt;"])
        if rng.random() < 0.25:
            ent = ent.replace("&", "&amp;", 1)
        text = text.replace(" ", f" {ent} ", 1)
    if rng.random() < 0.06:
        text += "\n\n" + rng.choice(BOILERPLATE).format(y=rng.randint(2004, 2011))
    if not text.isascii() and rng.random() < 0.015:
        text = _mojibake(text)
    if rng.random() < 0.005:
        text = text.replace(" ", "\u200b ", 2)
    if rng.random() < 0.0005:
        text += "\x00"
    if rng.random() < 0.0001:
        text += "\ud800"
    return text


def generate(records: int | None = None, seed: int = 0) -> Iterator[dict[str, Any]]:
    """The corpus, record by record, in class (label) order."""
    classes = class_index()
    for c, p in enumerate(class_plan(records)):
        if p["n"] == 0:
            continue
        wnid, cname = classes[c][0], classes[c][1].replace("_", " ")
        rng = random.Random(f"{seed}:{wnid}")
        regions = _regions(p, rng)
        ids = sorted(rng.sample(range(1, 20 * p["n"] + 2000), p["n"]))
        for n, (has_t, has_g, has_d) in zip(ids, regions, strict=True):
            # A few very active owners and a long tail: the 60 busiest own ~10% of the records.
            owner = int(N_OWNERS * rng.random() ** 3)
            lang = _owner_lang(owner)
            yield {
                "filename": f"{wnid}_{n}.JPEG",
                "title": _title(rng, lang, cname) if has_t else "",
                "tags": _tags(rng, lang, cname) if has_g else [],
                "description": _description(rng, lang, cname, owner) if has_d else "",
                "wnid": wnid,
                "owner": f"{owner}@N0{owner % 7}",
            }


def write_corpus(out: TextIO, records: int | None = None, seed: int = 0) -> int:
    """Write the corpus as one JSON list (the release's format), a record per line; returns the count."""
    n = 0
    out.write("[")
    for rec in generate(records, seed):
        out.write(",\n" if n else "\n")
        out.write(json.dumps(rec, ensure_ascii=True))
        n += 1
    out.write("\n]\n")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m imagenet_captions.testing.corpus", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", required=True, type=Path, help="output JSON file ('-' for stdout)")
    ap.add_argument(
        "--records", type=int, default=None, help="scale down to about N records (default: 448,896)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.records is not None and args.records < 1:
        ap.error("--records must be at least 1")
    if str(args.out) == "-":
        n = write_corpus(sys.stdout, args.records, args.seed)
    else:
        tmp = args.out.with_name(args.out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            n = write_corpus(f, args.records, args.seed)
        tmp.replace(args.out)
    print(f"wrote {n} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
