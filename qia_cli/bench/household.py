"""The memory store every `ordinary` item plans with (unless the item brings its own `setup`).

A request that already says what it wants must reach the image model intact *with a memory store in use*:
these entries share colours, animals, rooms and objects with many everyday requests ("a white dog", "a
green van", "a yellow kitchen"), so an entry recalled by shared words instead of by reference shows up as
harm. The style preference applies to requests that name no style; it is style, not harm.
"""

from __future__ import annotations

from qia_cli.bench.suite import MemorySetup

HOUSEHOLD = [
    MemorySetup(text="Juniper is my dog, a small white terrier with a blue harness"),
    MemorySetup(text="My son Theo has short black hair and round glasses"),
    MemorySetup(text="Our van is an old green Volkswagen camper with a roof rack"),
    MemorySetup(text="My grandmother's garden has tall sunflowers and a stone birdbath"),
    MemorySetup(text="Our kitchen has yellow tiles, copper pans and a long wooden table"),
    MemorySetup(text="My brother Sam plays a red electric guitar"),
    MemorySetup(text="I prefer warm film photography with soft grain"),
]
