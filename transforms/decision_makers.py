"""Is this person a decision maker? Rules over job titles and bios.

A decision maker holds budget or signs: C-level and "chief ... officer",
presidents, owners, founders and partners, vice presidents, heads of,
directors, managing directors and general managers, board members, and
procurement/purchasing. Common abbreviations (CEO, SVP, Dir., MD, GM...)
and titles in German, French, Spanish, Italian, Dutch and Portuguese are
recognised.

Exclusions are checked first, because the tricky titles contain a
decision maker's word without being one: "Executive Assistant to the CEO",
"Director of First Impressions" (a receptionist), "VP-level" (a band, not
a role), "Former CEO", "Aspiring founder", "Assistant Vice President".

``classify_title`` returns ``(is_decision_maker, rule)``: the rule names
what matched (or which exclusion applied), so analysts can see why.
"""

from __future__ import annotations

import re
import unicodedata

# (rule name, pattern) -- checked in order; the first match wins.
EXCLUSIONS: list[tuple[str, str]] = [
    (
        "assistant",
        r"\b(executive |personal |administrative )?assistant\b|\b(ea|pa)\s+to\b|\bsecretary to\b|\bassistente\b|\bassistentin\b",
    ),
    ("office_of", r"\b(chief of staff|office of the|reports? to)\b"),
    (
        "not_current",
        r"\b(former|ex|retired|aspiring|future|wannabe|would-be|student|intern|trainee|praktikant\w*|stagiaire)\b|\bex-",
    ),
    (
        "playful_title",
        r"\b(director|head|chief|vp) of (first impressions|happiness|fun|vibes|snacks|memes|good times)\b|\bchief (happiness|fun|evangelist|storyteller|cheerleader|troublemaker)\b|\b(ninja|guru|rockstar|wizard)\b",
    ),
    ("level_not_role", r"\b(vp|c|director|exec(utive)?)[- ]level\b"),
]

RULES: list[tuple[str, str]] = [
    (
        "c_level",
        r"\bc[a-z]?[eiotmrfspd]o\b|\bciso\b|\bchief\b.*\bofficer\b|\bchief executive\b|\bpdg\b|\bdsi\b|\bceo\b",
    ),
    (
        "president",
        r"\b(president|presidente|président|présidente|chair(man|woman|person)?|chairman of the board)\b",
    ),
    (
        "owner_founder",
        r"\b(owner|co-?owner|founder|co-?founder|proprietor|inhaber(in)?|gr(ü|ue)nder(in)?|fondateur|fondatrice|fundador(a)?|propietari[oa]|eigenaar|oprichter|s(ó|o)ci[oa]|titolare|g(é|e)rant(e)?)\b",
    ),
    ("partner", r"\b(managing |senior |founding )?partner\b"),
    ("vice_president", r"\b(vice[- ]president|s?e?vp|svp|evp|vicepresidente|vice-président)\b"),
    (
        "head_of",
        r"\bhead of\b|\b(global|regional|group) head\b|^head\b|\bleiter(in)?\b|\bjefe de\b|\bjefa de\b|\bresponsable\b|\bresponsabile\b",
    ),
    (
        "director",
        r"\b(managing director|general manager|director|directeur|directrice|directora?|direttore|direttrice|diretor(a)?|gesch(ä|ae)ftsf(ü|ue)hrer(in)?|vorstand|amministratore delegato|gerente general|md|gm)\b|\bdir\.(?=\s|$)",
    ),
    (
        "board",
        r"\b(board member|board of directors|member of the board|aufsichtsrat|verwaltungsrat|conseil d'administration)\b",
    ),
    (
        "procurement",
        r"\b(procurement|purchasing|purchaser|buyer|sourcing|vendor management|category manager|einkauf\w*|eink(ä|ae)ufer(in)?|achats?|acheteur|acheteuse|compras|comprador(a)?|acquisti|inkoop\w*|inkoper)\b",
    ),
]

_COMPILED_EXCLUSIONS = [(name, re.compile(p, re.IGNORECASE)) for name, p in EXCLUSIONS]
_COMPILED_RULES = [(name, re.compile(p, re.IGNORECASE)) for name, p in RULES]


def _clean(title: str) -> str:
    title = unicodedata.normalize("NFKC", title).strip()
    return re.sub(r"\s+", " ", title)


def classify_title(title: str | None) -> tuple[bool, str | None]:
    """``(True, rule)`` when the title says decision maker; ``(False, reason)`` otherwise."""
    if not title or not title.strip():
        return False, None
    text = _clean(title)[:300]
    for name, pattern in _COMPILED_EXCLUSIONS:
        if pattern.search(text):
            return False, f"excluded:{name}"
    for name, pattern in _COMPILED_RULES:
        if pattern.search(text):
            return True, name
    return False, None


def is_decision_maker(*texts: str | None) -> tuple[bool, str | None]:
    """The first of several texts (CRM title, platform title, bio) that decides."""
    reason = None
    for text in texts:
        yes, rule = classify_title(text)
        if yes:
            return True, rule
        reason = reason or rule
    return False, reason
