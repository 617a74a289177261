"""Words the speech tasks are built from: keywords and a small everyday vocabulary per language."""

from __future__ import annotations

#: The keyword-spotting classes (Speech Commands' core words and the ten digits).
KEYWORDS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip

#: Per language: digits one to ten and everyday words; an utterance strings a few of them together.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "en": (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "good morning", "thank you", "water", "house", "city", "today", "tomorrow", "friend",
        "the weather is nice", "where is the station",
    ),
    "de": (
        "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
        "guten Morgen", "danke schön", "Wasser", "Haus", "Stadt", "heute", "morgen", "Freund",
        "das Wetter ist schön", "wo ist der Bahnhof",
    ),
    "fr": (
        "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
        "bonjour", "merci beaucoup", "de l'eau", "la maison", "la ville", "aujourd'hui", "demain", "un ami",
        "il fait beau", "où est la gare",
    ),
    "es": (
        "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez",
        "buenos días", "muchas gracias", "agua", "la casa", "la ciudad", "hoy", "mañana", "un amigo",
        "hace buen tiempo", "dónde está la estación",
    ),
    "it": (
        "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci",
        "buongiorno", "grazie mille", "acqua", "la casa", "la città", "oggi", "domani", "un amico",
        "fa bel tempo", "dove è la stazione",
    ),
    "fi": (
        "yksi", "kaksi", "kolme", "neljä", "viisi", "kuusi", "seitsemän", "kahdeksan", "yhdeksän", "kymmenen",
        "hyvää huomenta", "kiitos paljon", "vesi", "talo", "kaupunki", "tänään", "huomenna", "ystävä",
        "sää on kaunis", "missä on asema",
    ),
    "cs": (
        "jedna", "dva", "tři", "čtyři", "pět", "šest", "sedm", "osm", "devět", "deset",
        "dobré ráno", "děkuji mnohokrát", "voda", "dům", "město", "dnes", "zítra", "přítel",
        "je hezké počasí", "kde je nádraží",
    ),
    "ru": (
        "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять", "десять",
        "доброе утро", "большое спасибо", "вода", "дом", "город", "сегодня", "завтра", "друг",
        "хорошая погода", "где вокзал",
    ),
    "pl": (
        "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem", "dziewięć", "dziesięć",
        "dzień dobry", "dziękuję bardzo", "woda", "dom", "miasto", "dzisiaj", "jutro", "przyjaciel",
        "jest ładna pogoda", "gdzie jest dworzec",
    ),
    "pt": (
        "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove", "dez",
        "bom dia", "muito obrigado", "água", "a casa", "a cidade", "hoje", "amanhã", "um amigo",
        "o tempo está bom", "onde fica a estação",
    ),
}  # fmt: skip

LANGUAGES: tuple[str, ...] = tuple(VOCABULARY)
