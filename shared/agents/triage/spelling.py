"""Typos in the words triage reads ("spnd", "latncy", "recomendations", "yesterdy").

A word one edit (a letter missing, extra, changed, or two letters swapped) away from exactly
one word of the vocabulary below is read as that word. The vocabulary is the words the cue
lexicon and the period phrases are made of; the words common in questions are never
corrected, nor are words inside names (``gpt-4o``, ``summarize_thread``), so "hosts" may be
read as "costs" but "the" is never read as "then".

Lookups use a dictionary of single-letter deletions (symmetric delete): a word costs one
dictionary lookup per letter, so correcting a message stays well under a millisecond.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from shared.agents.triage.spelling_keep import KEEP

_VOCABULARY_WORDS: Final = """
    much many spend spends spent spending cost costs costing costly bill billing billed invoice
    invoices charges charged expensive priciest costliest money dollars budget breakdown
    optimize optimise optimized optimization optimisation save saves saving savings reduce
    reducing reduction lower lowering decrease minimize cheaper cheapest affordable
    recommend recommendation recommendations suggest suggestion suggestions advice advise
    tips waste wasted wasting wasteful overspending overpaying inefficient inefficiency
    switch switching migrate downgrade replace caching cache batch batching distillation
    tokens token requests request calls invocations completions queries latency latencies
    response percentile percentiles median errors error failures failed failing timeouts
    retries usage volume traffic throughput average
    spike spikes spiked spiking surge surged jumped skyrocketed ballooned exploded doubled
    tripled anomaly anomalies anomalous outlier outliers unusual unusually abnormal
    unexpected unexpectedly weird strange suspicious sudden suddenly increase increased
    increasing dropped happened caused
    upload ingest import onboarding integrate integration instrument records telemetry
    opentelemetry traces format schema endpoint
    hello thanks
    today yesterday week weeks weekly weekend month months monthly quarter quarters
    fortnight year years daily hours days since between during previous
    monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december
    model models feature features provider providers users
"""
VOCABULARY: Final = frozenset(_VOCABULARY_WORDS.split())
# Words questions use that lie one edit from a vocabulary word, besides the dictionary's
# (``spelling_keep``): never corrected.
_COMMON_WORDS: Final = """
    the then than they them there these those this that what when where which who why how
    was were are our out you your its can could would should will with for from have has
    did does just only also and any all some most more much many over about after before
    here year data date rate send sent need feed call calls user uses used using same days
    week month late later latest token error usage cache cached spike
"""
_COMMON: Final = frozenset(_COMMON_WORDS.split())
_WORD: Final = re.compile(r"(?<![\w.\-/`])[A-Za-z]{3,}(?![\w\-/`]|\.\w)")


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for word in VOCABULARY:
        for key in (word, *_deletions(word)):
            index.setdefault(key, set()).add(word)
    return {key: frozenset(words) for key, words in index.items()}


_INDEX: Final = _index()


@lru_cache(maxsize=4096)
def correction(word: str) -> str | None:
    """The vocabulary word ``word`` (lower case) is one edit from, if exactly one and
    ``word`` is not an English word itself."""
    if word in KEEP or word in _COMMON:
        return None
    return raw_correction(word)


def raw_correction(word: str) -> str | None:
    """The vocabulary word ``word`` is one edit from, if exactly one (whatever ``word`` is)."""
    if word in VOCABULARY or len(word) < 3:
        return None
    # The likeliest typo first: a letter missing ("spnd"), then one extra ("spennd"), then
    # one changed or two swapped ("spemd"); the first kind that finds one word wins.
    shorter = _deletions(word)
    tiers = (
        set(_INDEX.get(word, ())),
        shorter & VOCABULARY,
        {w for key in shorter for w in _INDEX.get(key, ()) if _one_change(word, w)},
    )
    for found in tiers:
        # A short word one edit from a short vocabulary word is as likely another word.
        found = {w for w in found if len(w) >= 5 or len(word) >= len(w)}
        if found:
            return next(iter(found)) if len(found) == 1 else None
    return None


def _one_change(word: str, other: str) -> bool:
    """Whether two words of one length differ by one letter or by two adjacent ones swapped."""
    if len(word) != len(other):
        return False
    diff = [i for i, (a, b) in enumerate(zip(word, other, strict=True)) if a != b]
    if len(diff) == 1:
        return True
    first, second = diff if len(diff) == 2 else (0, 0)
    return second == first + 1 and word[first] == other[second] and word[second] == other[first]


def correct(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with its misspelled vocabulary words corrected (same case as the
    vocabulary: lower), and the (word, correction) pairs made."""
    made: list[tuple[str, str]] = []

    def fix(match: re.Match[str]) -> str:
        word = match.group()
        fixed = correction(word.lower())
        if fixed is None:
            return word
        made.append((word, fixed))
        return fixed

    corrected = _WORD.sub(fix, text)
    return corrected, made
