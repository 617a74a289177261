"""Speech pools: keyword spotting (``keywords``) and spoken language + speaker gender (``speech``).

Every voice is either a training voice or a held-out voice; held-out voices only ever appear in the
test split, for every engine. Training and validation clips come from training voices (validation
clips are new renditions), so validation stays in-domain and the test measures generalisation to
unseen speakers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from xbench.suites.offline.audio import add_noise, change_speed, item_rng, normalise_peak, place, trim_silence
from xbench.suites.offline.common import Item, PoolResult
from xbench.suites.offline.sources import FESTIVAL_VOICES, FLITE_VOICES, Sources
from xbench.suites.offline.texts import KEYWORDS, LANGUAGES, VOCABULARY
from xbench.suites.offline.tts import Espeak, festival_batch, flite_say
from xbench.taskspec.config import LabelSpec, TaskConfig

SEED = "xbench-offline-v1"

# espeak-ng voice variants ("+m1" ...) by gender; the last two of each are held out for the test split.
ESPEAK_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
ESPEAK_FEMALE = ("f1", "f2", "f3", "f4", "f5")
ESPEAK_TEST_VARIANTS = ("m6", "m7", "f4", "f5")
ESPEAK_OTHER_VARIANTS = ("klatt", "klatt2", "Andy", "Annie", "whisper")  # keywords only (no clear gender)
# English accents for keywords: the last three are held out.
EN_TRAIN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029")
EN_TEST_ACCENTS = ("en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
# espeak voice per language (training) and held-out regional accents (test only).
LANGUAGE_VOICES = {lang: (lang,) for lang in LANGUAGES} | {"en": ("en", "en-us")}
LANGUAGE_TEST_ACCENTS = {"en": ("en-gb-scotland",), "fr": ("fr-be",), "pt": ("pt-br",), "es": ("es-419",)}

FLITE_TEST = ("awb",)
FESTIVAL_KEYWORD_TRAIN = ("kal_diphone", "cmu_us_slt_arctic_hts", "pc_diphone", "suo_fi_lj_diphone", "czech_machac")
FESTIVAL_KEYWORD_TEST = ("ked_diphone", "lp_diphone", "hy_fi_mv_diphone", "czech_dita")
FESTIVAL_SPEECH_TEST = ("ked_diphone", "lp_diphone", "suo_fi_lj_diphone", "czech_machac")

KEYWORD_SECONDS = 1.0
CLIP_EPOCHS = 50  # the pools are small (~40 probe steps per epoch): X-ARES's 10 epochs would underfit
SPEECH_SECONDS = 3.0


def _gender(variant: str) -> str:
    return "female" if variant.startswith("f") else "male"


def _finish_clip(x: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Trim, tape-speed jitter, fit (speeding up what is too long), level and noise: one clip."""
    x = trim_silence(x)
    x = change_speed(x, float(rng.uniform(0.93, 1.07)))
    limit = int(0.96 * seconds * 16000)
    if len(x) > limit:
        x = change_speed(x, len(x) / limit)
    x = normalise_peak(x, float(rng.uniform(0.25, 0.9)))
    x = place(x, int(seconds * 16000), rng)
    return add_noise(x, rng, float(rng.uniform(25, 45)))


class _Renderer:
    """Synthesises (engine, voice, text) requests; festival requests are batched per voice."""

    def __init__(self, sources: Sources) -> None:
        self.espeak = Espeak() if sources.espeak else None

    def espeak_say(self, voice: str, text: str, rng: np.random.Generator) -> np.ndarray:
        assert self.espeak is not None
        rate, pitch = int(rng.integers(130, 200)), int(rng.integers(30, 71))
        return self.espeak.say(voice, text, rate=rate, pitch=pitch, seed=int(rng.integers(1, 2**31 - 1)))

    @staticmethod
    def flite(voice: str, text: str, rng: np.random.Generator) -> np.ndarray:
        return flite_say(voice, text, float(rng.uniform(0.85, 1.25)))

    @staticmethod
    def festival(voice: str, requests: list[tuple[str, np.random.Generator]]) -> list[np.ndarray]:
        return festival_batch(voice, [(text, float(rng.uniform(0.85, 1.25))) for text, rng in requests])


# -- keywords -------------------------------------------------------------------------------------------


def _keyword_plan(sources: Sources, small: bool) -> Iterator[tuple[str, str, str, int]]:
    """(split, engine, voice, renditions) for every word."""
    variants = ESPEAK_MALE + ESPEAK_FEMALE + ESPEAK_OTHER_VARIANTS
    train_variants = [v for v in variants if v not in ESPEAK_TEST_VARIANTS]
    train_espeak = [f"{a}+{v}" for a in EN_TRAIN_ACCENTS for v in train_variants]
    test_espeak = [f"{a}+{v}" for a in EN_TEST_ACCENTS for v in variants]
    test_espeak += [f"{a}+{v}" for a in EN_TRAIN_ACCENTS for v in ESPEAK_TEST_VARIANTS]
    n_train, n_valid, n_test, reps = (3, 2, 2, 1) if small else (len(train_espeak), 8, 16, 2)
    if sources.espeak:
        for split, pool, n in (("train", train_espeak, n_train), ("valid", train_espeak, n_valid),
                               ("test", test_espeak, n_test)):  # fmt: skip
            picked = item_rng(SEED, "kw-espeak", split).permutation(len(pool))[:n]
            for i in sorted(picked):
                yield split, "espeak", pool[i], 1
    flite_train = [v for v in FLITE_VOICES if v not in FLITE_TEST]
    for voice in sources.flite:
        test = voice in FLITE_TEST
        yield ("test", "flite", voice, reps + 1) if test else ("train", "flite", voice, reps)
        if not test and voice in flite_train and not small:
            yield "valid", "flite", voice, 1
    for voice in sources.festival:
        if voice in FESTIVAL_KEYWORD_TEST:
            yield "test", "festival", voice, reps
        elif voice in FESTIVAL_KEYWORD_TRAIN:
            yield "train", "festival", voice, reps
            if not small:
                yield "valid", "festival", voice, 1


def build_keywords(sources: Sources, small: bool) -> list[Item]:
    """Twenty keywords x voices of espeak-ng, flite and festival; held-out voices of each engine in test."""
    jobs: list[_Job] = []
    plan = list(_keyword_plan(sources, small))
    for word in KEYWORDS:
        for split, engine, voice, reps in plan:
            for rep in range(reps):
                key = f"kw_{split}_{engine}_{voice}_{word}_{rep}".replace("+", "-")
                meta = {"labels": word, "engine": engine, "voice": voice}
                item = Item(split, key, np.zeros(0, np.float32), meta)
                jobs.append(_Job(item, engine, voice, word, item_rng(SEED, key)))
    return _synthesise(sources, jobs, KEYWORD_SECONDS)


@dataclass
class _Job:
    """One clip to synthesise: its item (audio filled in by :func:`_synthesise`), engine, voice, text and
    the clip's own generator (``item_rng`` of its key, possibly already drawn from for the text)."""

    item: Item
    engine: str
    voice: str
    text: str
    rng: np.random.Generator


def _synthesise(sources: Sources, jobs: list[_Job], seconds: float) -> list[Item]:
    """Render every job's text with its engine (festival voices batched per voice), cut to ``seconds``.

    Each clip draws only from its own generator, so the rendering order does not change any clip.
    """
    render = _Renderer(sources)
    festival: dict[str, list[_Job]] = {}
    for job in jobs:
        if job.engine == "festival":
            festival.setdefault(job.voice, []).append(job)
        else:
            say = render.espeak_say if job.engine == "espeak" else render.flite
            job.item.audio = _finish_clip(say(job.voice, job.text, job.rng), seconds, job.rng)
    for voice, requests in festival.items():
        waves = render.festival(voice, [(job.text, job.rng) for job in requests])
        for job, wave in zip(requests, waves, strict=True):
            job.item.audio = _finish_clip(wave, seconds, job.rng)
    return [job.item for job in jobs]


def declare_keywords(pool: PoolResult) -> list[TaskConfig]:
    return [
        _task(
            pool,
            name="offline_keywords",
            formal_name="Offline keywords (TTS)",
            labels=LabelSpec("class", "labels", classes=KEYWORDS),
            description="Twenty spoken keywords (Speech Commands' core words and digits) from espeak-ng, flite and "
            "festival voices; test voices of every engine are unseen in training.",
        )
    ]


# -- spoken language and speaker gender ------------------------------------------------------------------


def _utterance(lang: str, rng: np.random.Generator) -> str:
    words = VOCABULARY[lang]
    picked = rng.choice(len(words), size=int(rng.integers(2, 4)), replace=False)
    return ", ".join(words[i] for i in picked)


def _speech_plan(sources: Sources, small: bool) -> Iterator[tuple[str, str, str, str, str, int]]:
    """(split, engine, voice, language, gender, utterances)."""
    train_variants = [v for v in ESPEAK_MALE + ESPEAK_FEMALE if v not in ESPEAK_TEST_VARIANTS]
    per_voice = (1, 1, 1) if small else (4, 1, 2)
    if sources.espeak:
        for lang in LANGUAGES:
            for base in LANGUAGE_VOICES[lang]:
                for variant in train_variants:
                    if small and item_rng(SEED, "sp-small", lang, base, variant).random() > 0.35:
                        continue
                    yield "train", "espeak", f"{base}+{variant}", lang, _gender(variant), per_voice[0]
                    yield "valid", "espeak", f"{base}+{variant}", lang, _gender(variant), per_voice[1]
                for variant in ESPEAK_TEST_VARIANTS:
                    yield "test", "espeak", f"{base}+{variant}", lang, _gender(variant), per_voice[2]
            for accent in LANGUAGE_TEST_ACCENTS.get(lang, ()):
                for variant in ("m3", "f2") if small else ("m1", "m3", "f1", "f2"):
                    yield "test", "espeak", f"{accent}+{variant}", lang, _gender(variant), per_voice[2]
    n_train, n_valid, n_test = (3, 1, 3) if small else (20, 4, 15)
    for voice in sources.festival:
        lang, gender, _ = FESTIVAL_VOICES[voice]
        if voice in FESTIVAL_SPEECH_TEST:
            yield "test", "festival", voice, lang, gender, n_test
        else:
            yield "train", "festival", voice, lang, gender, n_train
            yield "valid", "festival", voice, lang, gender, n_valid
    for voice in sources.flite:
        if voice == "kal16":  # the same speaker as kal
            continue
        gender = FLITE_VOICES[voice]
        if voice in FLITE_TEST:
            yield "test", "flite", voice, "en", gender, n_test
        else:
            yield "train", "flite", voice, "en", gender, n_train // 2
            yield "valid", "flite", voice, "en", gender, n_valid


def build_speech(sources: Sources, small: bool) -> list[Item]:
    """Short phrases in ten languages from espeak-ng, festival and flite voices, labelled language + gender."""
    jobs: list[_Job] = []
    for split, engine, voice, lang, gender, count in _speech_plan(sources, small):
        for i in range(count):
            key = f"sp_{split}_{engine}_{voice}_{i}".replace("+", "-")
            rng = item_rng(SEED, key)
            text = _utterance(lang, rng)
            meta = {"language": lang, "gender": gender, "engine": engine, "voice": voice, "text": text}
            jobs.append(_Job(Item(split, key, np.zeros(0, np.float32), meta), engine, voice, text, rng))
    return _synthesise(sources, jobs, SPEECH_SECONDS)


def declare_speech(pool: PoolResult) -> list[TaskConfig]:
    return [
        _task(
            pool,
            name="offline_language",
            formal_name="Offline spoken language (TTS)",
            labels=LabelSpec("class", "language", classes=LANGUAGES),
            description="Spoken language of short phrases (10 languages) from espeak-ng and festival voices (flite "
            "for English); test voices are held-out voice variants, regional accents and festival speakers.",
        ),
        _task(
            pool,
            name="offline_gender",
            formal_name="Offline speaker gender (TTS)",
            labels=LabelSpec("class", "gender", classes=("female", "male")),
            description="Speaker gender of the same phrases; test voices are unseen in training.",
        ),
    ]


def _task(pool: PoolResult, *, name: str, formal_name: str, labels: LabelSpec, description: str) -> TaskConfig:
    if pool.suffix:
        description += " PyPI-only variant: espeak-ng voices alone."
    return TaskConfig(
        name=name + pool.suffix,
        formal_name=formal_name + (" [PyPI]" if pool.suffix else ""),
        domain="speech",
        description=description,
        labels=labels,
        output_dim=labels.num_classes,
        data_dir=f"../data/{pool.name}",
        checksums=pool.checksums,
        batch_size_encode=32,
        epochs=CLIP_EPOCHS,
        eval_weight=float(pool.counts["test"]),
        licence="generated at build time; espeak-ng data GPL-3.0-or-later, flite BSD-style, festival voices "
        "BSD/EST-style",
        citation="xbench offline suite",
    )
