"""Which landmark each query of a revisited dataset shows, read from the ground truth, not the names
(``oxford_002985`` is an All Souls query; four of Paris's five Eiffel queries are ``paris_general_*``).

Two queries are linked when the Jaccard overlap of the database images their ground truth lists (easy, hard,
junk) is at least :data:`LINK_JACCARD`; a landmark is a connected component of the links. It takes the stem
(name less its number) most of its queries carry among those no other landmark's carry, else the most frequent;
ties go to the alphabetically first; of two landmarks with one name, the one with more queries carrying it
keeps it, the other is named after its first query.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
from scipy.sparse.csgraph import connected_components

LINK_JACCARD = 0.25
#: The rule's name, as retrieval records hold it: records made under another labelling are not reused.
RULE = f"ground-truth jaccard >= {LINK_JACCARD:g}"


def stem(query_name: str) -> str:
    """``all_souls_000013`` -> ``all_souls``."""
    return re.sub(r"_\d+$", "", query_name)


def ground_truth_sets(gnd: Sequence[dict]) -> list[set[int]]:
    return [{int(i) for key in ("easy", "hard", "junk") for i in g.get(key, ())} for g in gnd]


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def clusters(gnd: Sequence[dict]) -> list[list[int]]:
    """Queries grouped by the rule above, each group in query order, groups in order of their first query."""
    sets = ground_truth_sets(gnd)
    links = np.array([[jaccard(a, b) >= LINK_JACCARD for b in sets] for a in sets], dtype=bool)
    component = connected_components(links.reshape(len(sets), len(sets)), directed=False)[1]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(component):
        groups[c].append(i)
    return sorted(groups.values(), key=lambda members: members[0])


def landmark_names(groups: list[list[int]], qimlist: Sequence[str]) -> list[str]:
    """One distinct name per group, from its queries' names (the naming rule above)."""
    stems = [stem(q) for q in qimlist]
    counts = [Counter(stems[q] for q in members) for members in groups]
    carriers = Counter(s for count in counts for s in count)  # how many groups carry each stem
    chosen = [min([s for s in count if carriers[s] == 1] or count, key=lambda s: (-count[s], s)) for count in counts]
    names = list(chosen)
    for name in set(chosen):
        holders = [g for g, other in enumerate(chosen) if other == name]
        keeper = min(holders, key=lambda g: (-counts[g][name], groups[g][0]))
        for g in holders:
            if g != keeper:
                names[g] = qimlist[groups[g][0]]
    return names


def group_queries(qimlist: Sequence[str], gnd: Sequence[dict]) -> tuple[list[int], list[str]]:
    """A landmark label per query and the landmark names in label order (alphabetical)."""
    if len(qimlist) != len(gnd):
        raise ValueError(f"{len(qimlist)} query names for {len(gnd)} ground-truth entries")
    groups = clusters(gnd)
    names = landmark_names(groups, qimlist)
    order = sorted(range(len(groups)), key=lambda g: names[g])
    labels = [0] * len(qimlist)
    for label, g in enumerate(order):
        for q in groups[g]:
            labels[q] = label
    return labels, [names[g] for g in order]

