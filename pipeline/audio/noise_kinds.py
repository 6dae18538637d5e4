"""Kinds of noise in the shared noise corpus, by file-name prefix (``../shared/corpora/README.md``).

A kind names noises a bucket may hold that a supervised model should not have heard:
the held-out-noise-type set (``bench/make_heldout.py --noise-kinds``) mixes only
those, and a training recipe leaves them out with ``data.exclude_noise_kinds``. The
prefixes match the start of a file's base name, as ``data.exclude_prefixes`` does;
they were read from the corpus README's per-source descriptions (a file whose content
the README does not make clear is in no kind).
"""

from __future__ import annotations

NOISE_KINDS: dict[str, tuple[str, ...]] = {
    # Motors, fans, appliances and engines: steady, tonal-plus-broadband hums.
    "machinery": (
        "air_conditioner",
        "exercise_bike",
        "ambie_vacuum",
        "ibmmax_car_engine",
        "moodist_places_construction_site",
        "moodist_places_laundry_room",
        "moodist_things_ceiling_fan",
        "moodist_things_dryer",
        "moodist_things_washing_machine",
    ),
    # Underground railway: station ambience and the train in the tunnel.
    "underground": ("cdda_underground", "moodist_places_subway_station"),
    # Trains above ground, from outside and inside.
    "rail": ("blanket_train", "ibmmax_train", "moodist_transport_train", "moodist_transport_inside_a_train"),
    "thunder": ("ambie_thunder", "cdda_thunder", "ibmmax_thunder"),
    "rain": (
        "rain.flac",
        "blanket_rain",
        "blanket_storm",
        "cdda_drizzle",
        "cdda_heavyrain",
        "cdda_night_rain",
        "cdda_weather_rainstorm",
        "ibmmax_rain",
        "moodist_rain_",
    ),
    # Many voices: babble that may be partly intelligible.
    "crowd": (
        "zalozba_",
        "ibmmax_crowd_cheering",
        "ibmmax_applause",
        "moodist_places_cafe",
        "moodist_places_crowded_bar",
        "moodist_places_office",
        "moodist_urban_crowd",
    ),
}


def kind_prefixes(kinds: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The file-name prefixes of ``kinds``; an unknown kind is a ValueError naming the known ones."""
    unknown = [k for k in kinds if k not in NOISE_KINDS]
    if unknown:
        raise ValueError(f"unknown noise kind(s) {', '.join(unknown)}; known: {', '.join(NOISE_KINDS)}")
    return tuple(p for k in kinds for p in NOISE_KINDS[k])


def is_of_kinds(key: str, kinds: tuple[str, ...] | list[str]) -> bool:
    """Whether the file ``key`` (a relative key; its base name counts) is a noise of one of ``kinds``."""
    return key.rsplit("/", 1)[-1].startswith(kind_prefixes(kinds))
