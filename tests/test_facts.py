"""KPIs on a hand-built day whose answers are known, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from engage.warehouse.schema import (
    account,
    account_stage_history,
    author,
    author_match,
    content_item,
    engagement_observation,
    fct_account_daily,
    fct_item_engagement,
    fct_source_daily,
    prospect,
    referral,
    source,
    stage_prediction,
)
from transforms.facts import build_facts_for_date
from transforms.load import content_hash
from transforms.people import import_crm, match_authors
from transforms.referrals import import_referrals

DAY = date(2026, 11, 20)
T = datetime(2026, 11, 20, tzinfo=UTC)

CRM = """Contact ID,First Name,Last Name,Email,Job Title,Company Name,Website,Contact owner,Twitter Username
c-ann,Ann,Lee,ann@globex.com,Chief Technology Officer,Globex,https://www.globex.com,Sam Seller,
c-bob,Bob,Ray,bob@globex.com,VP Sales,Globex,globex.com,Sam Seller,bobray
c-carl,Carl,Ng,carl@globex.com,Software Engineer,Globex,globex.com,Sam Seller,
c-dee,Dee,Park,dee@initech.com,Executive Assistant to the CEO,Initech,initech.com,Kim Closer,
"""


def _source(conn, name: str, url: str, kind: str = "discourse") -> int:  # type: ignore[no-untyped-def]
    return conn.execute(
        insert(source)
        .values(
            name=name, kind=kind, url=url, is_own=False, created_at=T, updated_at=T, consecutive_failures=0
        )
        .returning(source.c.source_id)
    ).scalar_one()


def _author(conn, source_id: int, ext: str, **kw) -> int:  # type: ignore[no-untyped-def]
    return conn.execute(
        insert(author)
        .values(
            source_id=source_id,
            external_id=ext,
            first_seen_at=T,
            last_seen_at=T,
            is_ours=kw.pop("is_ours", False),
            **kw,
        )
        .returning(author.c.author_id)
    ).scalar_one()


def _item(conn, source_id, ext, author_id, when, kind="reply", thread="t1", ours=False, url=None, stage=None):  # type: ignore[no-untyped-def]
    item_id = conn.execute(
        insert(content_item)
        .values(
            source_id=source_id,
            external_id=ext,
            kind=kind,
            thread_external_id=thread,
            parent_external_id=None if kind == "post" else thread,
            author_id=author_id,
            body_text=ext,
            url=url,
            published_at=when,
            first_collected_at=when,
            last_collected_at=when,
            collected_date=when.date(),
            content_hash=content_hash(None, ext),
            is_ours=ours,
        )
        .returning(content_item.c.item_id)
    ).scalar_one()
    if stage:
        conn.execute(
            insert(stage_prediction).values(
                item_id=item_id,
                label=stage,
                model_label=stage,
                confidence=0.9,
                model_version="v",
                content_hash=content_hash(None, ext),
                predicted_at=when,
            )
        )
    return item_id


def build_day(engine: Engine, tmp_path: Path) -> dict[str, int]:
    crm = tmp_path / "crm.csv"
    crm.write_text(CRM)
    counts = import_crm(engine, crm)
    assert (counts.accounts, counts.prospects, counts.decision_makers) == (2, 4, 2)
    with engine.begin() as conn:
        forum = _source(conn, "forum", "https://community.example.com/latest.json")
        social = _source(conn, "mastodon", "https://mastodon.example/@acme", "mastodon")
        ann = _author(conn, forum, "ann", email="ann@globex.com", display_name="Ann Lee")
        bob = _author(conn, forum, "bob_r", handle="@BobRay", display_name="Bob Ray")
        us = _author(conn, forum, "acme_support", is_ours=True, display_name="Acme Support")
        _item(conn, forum, "t1", ann, T + timedelta(hours=9), kind="post", stage="evaluation")
        _item(conn, forum, "r1", us, T + timedelta(hours=12), ours=True)  # answered after 3 hours
        _item(conn, forum, "r2", bob, T + timedelta(hours=13), stage="decision")
        _item(conn, forum, "r3", us, T + timedelta(hours=14), ours=True)  # a follow-up
        _item(
            conn,
            forum,
            "blog",
            us,
            T - timedelta(days=3),
            kind="post",
            thread="blog",
            ours=True,
            url="https://acme.example/blog/forecasting-checklist",
        )
        for day, value in ((DAY - timedelta(days=1), 1000), (DAY, 990)):  # a follower drop
            conn.execute(
                insert(engagement_observation).values(
                    source_id=social,
                    subject_type="account",
                    subject_external_id="acme",
                    metric="followers",
                    value=value,
                    observed_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6),
                    observed_date=day,
                )
            )
        conn.execute(
            insert(engagement_observation).values(
                source_id=forum,
                subject_type="item",
                subject_external_id="t1",
                metric="likes",
                value=4,
                observed_at=T + timedelta(hours=21),
                observed_date=DAY,
            )
        )
    assert match_authors(engine) == 2
    refs = tmp_path / "referrals.csv"
    refs.write_text(
        "Date,Full referrer,Landing page,Sessions\n"
        "2026-11-20,https://community.example.com/t/t1,https://www.acme.example/blog/forecasting-checklist/?utm_source=forum&utm_medium=community&utm_campaign=q4,7\n"
        "2026-11-20,https://community.example.com/t/t1,https://acme.example/blog/forecasting-checklist?utm_campaign=q4&utm_medium=community&utm_source=forum&fbclid=x,2\n"
    )
    assert import_referrals(engine, refs) == 1  # the two rows are the same referral once normalised
    return {"forum": forum, "social": social}


def test_a_known_day_gives_the_known_kpis(engine: Engine, tmp_path: Path) -> None:
    ids = build_day(engine, tmp_path)
    build_facts_for_date(engine, DAY)
    with engine.connect() as conn:
        forum = conn.execute(
            select(fct_source_daily).where(fct_source_daily.c.source_id == ids["forum"])
        ).one()
        social = conn.execute(
            select(fct_source_daily).where(fct_source_daily.c.source_id == ids["social"])
        ).one()
        globex = conn.execute(select(fct_account_daily).join(account).where(account.c.name == "Globex")).one()
        history = conn.execute(
            select(account_stage_history.c.stage, account_stage_history.c.entered_date)
        ).all()
        ref = conn.execute(select(referral)).one()
        engagement = conn.execute(select(fct_item_engagement)).one()
    assert forum.threads_started_by_others == 1 and forum.threads_started_by_us == 0
    assert forum.replies == 3 and forum.our_replies == 2
    assert forum.threads_answered == 1 and forum.median_response_minutes == 180
    assert forum.our_follow_ups == 1
    assert forum.decision_makers_active == 2 and forum.prospects_active == 2
    assert forum.referrals == 9 and forum.likes == 4
    assert social.followers == 990 and social.followers_change == -10
    assert (globex.items, globex.people_active, globex.decision_makers_active, globex.stage) == (
        2,
        2,
        2,
        "decision",
    )
    assert history == [("decision", DAY)]
    assert (ref.utm_source, ref.utm_medium, ref.utm_campaign, ref.sessions) == ("forum", "community", "q4", 9)
    assert ref.landing_url == "https://acme.example/blog/forecasting-checklist"
    assert ref.landing_item_id is not None and ref.source_id == ids["forum"]
    assert engagement.engagement == 4 and engagement.hours_since_published == 12


def test_rerunning_a_day_replaces_it(engine: Engine, tmp_path: Path) -> None:
    build_day(engine, tmp_path)
    build_facts_for_date(engine, DAY)
    with engine.connect() as conn:
        before = conn.execute(select(fct_source_daily).order_by(fct_source_daily.c.source_id)).all()
    build_facts_for_date(engine, DAY)
    with engine.connect() as conn:
        after = conn.execute(select(fct_source_daily).order_by(fct_source_daily.c.source_id)).all()
        counts = [
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (fct_source_daily, fct_account_daily, account_stage_history, fct_item_engagement)
        ]
    assert [r._mapping["replies"] for r in before] == [r._mapping["replies"] for r in after]
    assert counts == [2, 1, 1, 1]


def test_matches_carry_method_and_confidence(engine: Engine, tmp_path: Path) -> None:
    build_day(engine, tmp_path)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                select(author.c.external_id, author_match.c.method).join(
                    author_match, author_match.c.author_id == author.c.author_id
                )
            ).all()
        )
        dm = dict(conn.execute(select(prospect.c.crm_id, prospect.c.is_decision_maker)).all())
    assert rows == {"ann": "email", "bob_r": "handle"}  # our own author is never matched
    assert dm == {"c-ann": True, "c-bob": True, "c-carl": False, "c-dee": False}
