-- Every prospect who took part anywhere, with their account, owner and latest stage.
with prospect_items as (
    select
        m.prospect_id,
        i.item_id,
        i.published_at,
        i.kind,
        p.label as stage
    from author_match as m
    join content_item as i on i.author_id = m.author_id
    left join stage_prediction as p on p.item_id = i.item_id
    where m.prospect_id is not null
),

latest as (
    select
        prospect_id,
        max(published_at) as last_engaged_at,
        min(published_at) as first_engaged_at,
        count(*) as items,
        sum(case when kind in ('reply', 'comment') then 1 else 0 end) as replies
    from prospect_items
    group by prospect_id
),

latest_stage as (
    select
        pi.prospect_id,
        max(pi.stage) as latest_stage
    from prospect_items as pi
    join latest as l on l.prospect_id = pi.prospect_id and l.last_engaged_at = pi.published_at
    group by pi.prospect_id
)

select
    pr.prospect_id,
    pr.crm_id,
    pr.full_name,
    pr.title,
    pr.is_decision_maker,
    pr.owner,
    a.account_id,
    a.name as account_name,
    a.domain as account_domain,
    l.items,
    l.replies,
    l.first_engaged_at,
    l.last_engaged_at,
    ls.latest_stage
from latest as l
join prospect as pr on pr.prospect_id = l.prospect_id
left join account as a on a.account_id = pr.account_id
left join latest_stage as ls on ls.prospect_id = l.prospect_id
