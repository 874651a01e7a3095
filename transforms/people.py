"""Prospects and accounts from a CRM export, and who among the authors they are.

CRM import: a CSV exported from Salesforce or HubSpot (contacts with their
company). Headers are matched case-insensitively against ``CRM_COLUMNS``
(docs/warehouse.md lists them); a row without an id uses the e-mail as its
CRM id, an account without an id uses its domain. Rerunning an import
updates the same rows.

Matching, strongest first (the first that applies wins):

| method | rule | confidence |
|---|---|---|
| override | `match_override` names the prospect (or "nobody") | 1.0 |
| email | the author's e-mail equals the prospect's | 0.99 |
| profile_url | the author's profile URL equals the prospect's LinkedIn/X URL | 0.95 |
| handle | the author's handle is one of the prospect's handles | 0.9 |
| name_and_domain | same full name, and the author's e-mail, profile or bio shows the account's domain | 0.8 |
| email_domain | only the e-mail domain is the account's: an account match, no prospect | 0.6 |

Our own people (``author.is_ours``) are never matched to prospects.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, select

from engage.errors import EngageError
from engage.warehouse.db import lookup_ids, upsert
from engage.warehouse.schema import account, author, author_match, match_override, prospect, source
from transforms.decision_makers import is_decision_maker


class CrmImportError(EngageError):
    """A CRM export could not be read; the message names the file and row."""


CRM_COLUMNS: dict[str, tuple[str, ...]] = {
    "crm_id": ("id", "contact id", "record id", "contact_id", "lead id", "contactid"),
    "first_name": ("first name", "firstname", "first_name"),
    "last_name": ("last name", "lastname", "last_name"),
    "full_name": ("name", "full name", "contact name", "full_name"),
    "email": ("email", "email address", "e-mail", "work email"),
    "title": ("title", "job title", "jobtitle", "job_title"),
    "account_name": ("account name", "company name", "company", "account", "associated company"),
    "account_crm_id": ("account id", "associated company id", "company id", "accountid", "account_id"),
    "domain": (
        "website",
        "website url",
        "company domain name",
        "domain",
        "account website",
        "company website",
    ),
    "owner": ("contact owner", "owner", "account owner", "hubspot owner", "owner name", "sales owner"),
    "linkedin_url": ("linkedin", "linkedin url", "linkedin profile", "linkedin_url", "linkedin profile url"),
    "twitter_handle": ("twitter", "twitter username", "twitter handle", "x handle", "x username"),
    "other_handles": ("handles", "other handles", "social handles", "mastodon", "bluesky"),
    "industry": ("industry",),
    "is_target": ("target account", "is target", "target", "target_account"),
}

# Free-mail domains say nothing about a person's company.
FREEMAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
    }
)

CONFIDENCE = {
    "override": 1.0,
    "email": 0.99,
    "profile_url": 0.95,
    "handle": 0.9,
    "name_and_domain": 0.8,
    "email_domain": 0.6,
}


def normalise_email(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if "@" in value else None


def normalise_domain(value: str | None) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if "@" in value and "/" not in value:
        value = value.rsplit("@", 1)[1]
    host = urlsplit(value if "//" in value else "//" + value).hostname or ""
    host = host.removeprefix("www.")
    return host or None


def normalise_profile_url(value: str | None) -> str | None:
    """Scheme, ``www.``, query and trailing slash removed, lower case."""
    value = (value or "").strip()
    if not value:
        return None
    parts = urlsplit(value if "//" in value else "//" + value)
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    return f"{host}{parts.path.rstrip('/')}".lower()


def normalise_handle(value: str | None) -> str | None:
    value = (value or "").strip().lower().lstrip("@")
    return value or None


def normalise_name(value: str | None) -> str | None:
    value = unicodedata.normalize("NFKD", value or "")
    value = "".join(c for c in value if not unicodedata.combining(c)).lower()
    value = re.sub(r"[^a-z0-9 ]+", " ", value)
    value = " ".join(value.split())
    return value or None


def _header_map(fieldnames: Iterable[str]) -> dict[str, str]:
    lowered = {name.strip().lower(): name for name in fieldnames if name}
    found = {}
    for field, names in CRM_COLUMNS.items():
        for candidate in names:
            if candidate in lowered:
                found[field] = lowered[candidate]
                break
    return found


@dataclass
class CrmImportCounts:
    accounts: int
    prospects: int
    decision_makers: int


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "y", "x"}


def import_crm(engine: Engine, path: Path) -> CrmImportCounts:
    """Load a CRM contacts export into ``account`` and ``prospect``."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = _header_map(reader.fieldnames or [])
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CrmImportError(f"{path}: cannot read the CRM export: {exc}") from exc
    if "email" not in columns and "crm_id" not in columns:
        raise CrmImportError(
            f"{path}: needs an e-mail or id column (known names: {', '.join(CRM_COLUMNS['email'] + CRM_COLUMNS['crm_id'])})"
        )
    stamp = datetime.now(UTC)

    def get(record: dict[str, str], field: str) -> str | None:
        name = columns.get(field)
        value = (record.get(name) or "").strip() if name else ""
        return value or None

    accounts: dict[str, dict[str, Any]] = {}
    people: list[tuple[dict[str, Any], str | None]] = []
    for number, record in enumerate(records, start=2):
        email = normalise_email(get(record, "email"))
        crm_id = get(record, "crm_id") or email
        if not crm_id:
            raise CrmImportError(f"{path}:{number}: a row needs an id or an e-mail")
        domain = normalise_domain(get(record, "domain"))
        if domain is None and email and email.rsplit("@", 1)[1] not in FREEMAIL:
            domain = email.rsplit("@", 1)[1]
        account_name = get(record, "account_name")
        account_key = (
            get(record, "account_crm_id") or domain or (account_name.lower() if account_name else None)
        )
        if account_key:
            accounts[account_key] = {
                "crm_id": account_key[:200],
                "name": (account_name or domain or account_key)[:500],
                "domain": domain,
                "owner": get(record, "owner"),
                "industry": get(record, "industry"),
                "is_target": _truthy(get(record, "is_target")) if columns.get("is_target") else True,
                "updated_at": stamp,
            }
        full_name = get(record, "full_name") or " ".join(
            p for p in (get(record, "first_name"), get(record, "last_name")) if p
        )
        title = get(record, "title")
        dm, rule = is_decision_maker(title)
        people.append(
            (
                {
                    "crm_id": crm_id[:200],
                    "full_name": full_name or None,
                    "email": email,
                    "title": title,
                    "owner": get(record, "owner"),
                    "linkedin_url": normalise_profile_url(get(record, "linkedin_url")),
                    "twitter_handle": normalise_handle(get(record, "twitter_handle")),
                    "other_handles": ";".join(
                        h
                        for h in (
                            normalise_handle(x)
                            for x in re.split(r"[;, ]+", get(record, "other_handles") or "")
                        )
                        if h
                    )
                    or None,
                    "is_decision_maker": dm,
                    "decision_maker_rule": rule,
                    "updated_at": stamp,
                },
                account_key,
            )
        )
    with engine.begin() as conn:
        upsert(conn, account, list(accounts.values()), key=["crm_id"])
        ids = lookup_ids(conn, account, "account_id", ["crm_id"], [(k[:200],) for k in accounts])
        rows = [{**row, "account_id": ids.get((key[:200],)) if key else None} for row, key in people]
        upsert(conn, prospect, rows, key=["crm_id"])
    return CrmImportCounts(
        len(accounts), len(people), sum(1 for row, _ in people if row["is_decision_maker"])
    )


@dataclass
class _Prospect:
    prospect_id: int
    account_id: int | None
    name: str | None
    domain: str | None


def match_authors(engine: Engine, *, only_unmatched: bool = False) -> int:
    """(Re)match authors to prospects and accounts; returns the matches stored."""
    with engine.connect() as conn:
        accounts_by_domain = {
            r.domain: r.account_id
            for r in conn.execute(select(account.c.account_id, account.c.domain))
            if r.domain
        }
        by_email: dict[str, _Prospect] = {}
        by_profile: dict[str, _Prospect] = {}
        by_handle: dict[str, _Prospect] = {}
        by_name: dict[str, list[_Prospect]] = {}
        query = select(prospect, account.c.domain).outerjoin(
            account, account.c.account_id == prospect.c.account_id
        )
        for r in conn.execute(query):
            p = _Prospect(r.prospect_id, r.account_id, normalise_name(r.full_name), r.domain)
            if r.email:
                by_email[r.email] = p
            if r.linkedin_url:
                by_profile[r.linkedin_url] = p
            if r.twitter_handle:
                by_handle[r.twitter_handle] = p
                by_profile[f"x.com/{r.twitter_handle}"] = p
                by_profile[f"twitter.com/{r.twitter_handle}"] = p
            for h in (r.other_handles or "").split(";"):
                if h:
                    by_handle[h] = p
            if p.name:
                by_name.setdefault(p.name, []).append(p)
        prospect_ids_by_crm = {
            r.crm_id: (r.prospect_id, r.account_id)
            for r in conn.execute(select(prospect.c.crm_id, prospect.c.prospect_id, prospect.c.account_id))
        }
        overrides = {
            (r.source_name, r.author_external_id): r.prospect_crm_id
            for r in conn.execute(select(match_override))
        }
        authors_query = select(author, source.c.name.label("source_name")).join(
            source, source.c.source_id == author.c.source_id
        )
        if only_unmatched:
            authors_query = authors_query.where(~author.c.author_id.in_(select(author_match.c.author_id)))
        authors = conn.execute(authors_query).all()

    stamp = datetime.now(UTC)
    rows = []
    unmatched = []
    for a in authors:
        found = _match_one(
            a, overrides, prospect_ids_by_crm, by_email, by_profile, by_handle, by_name, accounts_by_domain
        )
        if found is None:
            unmatched.append(a.author_id)
            continue
        method, prospect_id, account_id = found
        rows.append(
            {
                "author_id": a.author_id,
                "prospect_id": prospect_id,
                "account_id": account_id,
                "method": method,
                "confidence": CONFIDENCE.get(method, 1.0),
                "matched_at": stamp,
            }
        )
    with engine.begin() as conn:
        upsert(conn, author_match, rows, key=["author_id"])
        if unmatched and not only_unmatched:
            for start in range(0, len(unmatched), 500):
                conn.execute(
                    delete(author_match).where(author_match.c.author_id.in_(unmatched[start : start + 500]))
                )
    return len(rows)


def _match_one(
    a, overrides, prospect_ids_by_crm, by_email, by_profile, by_handle, by_name, accounts_by_domain
):  # type: ignore[no-untyped-def]
    key = (a.source_name, a.external_id)
    if key in overrides:
        crm_id = overrides[key]
        if crm_id is None:
            return ("override_none", None, None)
        if crm_id in prospect_ids_by_crm:
            prospect_id, account_id = prospect_ids_by_crm[crm_id]
            return ("override", prospect_id, account_id)
    if a.is_ours:
        return None
    email = normalise_email(a.email)
    if email and email in by_email:
        p = by_email[email]
        return ("email", p.prospect_id, p.account_id)
    profile = normalise_profile_url(a.profile_url)
    if profile and profile in by_profile:
        p = by_profile[profile]
        return ("profile_url", p.prospect_id, p.account_id)
    handle = normalise_handle(a.handle)
    if handle and handle in by_handle:
        p = by_handle[handle]
        return ("handle", p.prospect_id, p.account_id)
    name = normalise_name(a.display_name)
    if name and name in by_name:
        evidence = " ".join(
            x for x in (email or "", (a.profile_url or "").lower(), (a.bio or "").lower()) if x
        )
        for p in by_name[name]:
            if p.domain and p.domain in evidence:
                return ("name_and_domain", p.prospect_id, p.account_id)
    if email:
        domain = email.rsplit("@", 1)[1]
        if domain not in FREEMAIL and domain in accounts_by_domain:
            return ("email_domain", None, accounts_by_domain[domain])
    return None


def set_override(
    engine: Engine,
    source_name: str,
    author_external_id: str,
    prospect_crm_id: str | None,
    note: str | None = None,
) -> None:
    """Record a manual match (or, with no prospect, a confirmed non-match)."""
    with engine.begin() as conn:
        if (
            prospect_crm_id is not None
            and conn.execute(
                select(prospect.c.prospect_id).where(prospect.c.crm_id == prospect_crm_id)
            ).first()
            is None
        ):
            raise EngageError(f"no prospect with CRM id {prospect_crm_id!r}")
        upsert(
            conn,
            match_override,
            [
                {
                    "source_name": source_name,
                    "author_external_id": author_external_id,
                    "prospect_crm_id": prospect_crm_id,
                    "note": note,
                    "created_at": datetime.now(UTC),
                }
            ],
            key=["source_name", "author_external_id"],
        )
