"""Decision-maker detection on a table of real-looking titles, tricky ones included."""

from __future__ import annotations

import pytest

from transforms.decision_makers import classify_title, is_decision_maker

DECISION_MAKERS = [
    "CEO",
    "Chief Executive Officer",
    "CFO & Co-Founder",
    "Chief Revenue Officer",
    "CISO",
    "cto",
    "Chief Information Security Officer",
    "President and COO",
    "Owner",
    "Co-owner, Baker Plumbing",
    "Founder @ Acme",
    "Managing Partner",
    "Partner",
    "Vice President, Sales",
    "VP Marketing",
    "SVP Engineering",
    "EVP & General Counsel",
    "Head of Revenue Operations",
    "Global Head of Procurement",
    "Director of IT",
    "Sr. Director, Demand Generation",
    "Managing Director EMEA",
    "General Manager",
    "Board Member",
    "Procurement Manager",
    "Purchasing Lead",
    "Senior Buyer",
    "Strategic Sourcing Manager",
    "Geschäftsführer",
    "Leiter Einkauf",
    "Vorstand Finanzen",
    "Directeur commercial",
    "PDG",
    "Responsable achats",
    "Directora de Marketing",
    "Gerente General",
    "Jefe de Compras",
    "Amministratore Delegato",
    "Responsabile acquisti",
    "Eigenaar",
    "Hoofd inkoop",
    "Diretor de TI",
    "Dir. Operations",
    "MD, Corporate Banking",
]

NOT_DECISION_MAKERS = [
    "Executive Assistant to the CEO",
    "EA to the CFO",
    "Director of First Impressions",
    "VP-level",
    "Chief of Staff to the CTO",
    "Former CEO",
    "Ex-VP Sales, now consultant",
    "Aspiring founder",
    "Student at MIT",
    "Marketing Intern",
    "Assistant Vice President",
    "Chief Happiness Officer",
    "Sales Development Representative",
    "Software Engineer",
    "Account Executive",
    "Customer Success Manager",
    "Data Analyst",
    "Marketing Manager",
    "Reports to the VP of Sales",
    "Growth hacker & marketing ninja",
    "",
    None,
]


@pytest.mark.parametrize("title", DECISION_MAKERS)
def test_decision_makers_are_found(title: str) -> None:
    yes, rule = classify_title(title)
    assert yes, f"{title!r} should be a decision maker"
    assert rule


@pytest.mark.parametrize("title", NOT_DECISION_MAKERS)
def test_others_are_not(title: str | None) -> None:
    assert not classify_title(title)[0], f"{title!r} should not be a decision maker"


def test_the_rule_says_why() -> None:
    assert classify_title("Executive Assistant to the CEO") == (False, "excluded:assistant")
    assert classify_title("Head of Procurement")[1] == "head_of"
    assert classify_title("Einkäuferin")[1] == "procurement"


def test_first_deciding_text_wins() -> None:
    assert is_decision_maker(None, "Software Engineer", "Co-founder and CTO at Flowline") == (True, "c_level")
    assert is_decision_maker("Account Executive", None)[0] is False
