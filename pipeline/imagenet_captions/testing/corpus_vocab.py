"""The words, sentences and Flickr debris the stand-in corpus is written from (data only).

Hand-written for this generator, per language; kept apart from :mod:`.corpus` so its logic reads
without scrolling past a hundred lines of vocabulary.
"""

from __future__ import annotations

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
