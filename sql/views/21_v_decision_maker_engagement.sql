-- Each item posted by a decision maker (from the CRM, or by their platform title).
select
    i.item_id,
    s.name as source_name,
    i.published_at,
    {{to_date(i.published_at)}} as published_date,
    i.kind,
    i.title,
    i.url,
    au.display_name as author_name,
    coalesce(pr.title, au.title) as author_title,
    pr.prospect_id,
    pr.full_name as prospect_name,
    a.account_id,
    a.name as account_name,
    a.owner as account_owner,
    sp.label as stage,
    case when th.is_ours then 1 else 0 end as in_our_thread
from content_item as i
join source as s on s.source_id = i.source_id
join author as au on au.author_id = i.author_id
left join author_match as m on m.author_id = au.author_id
left join prospect as pr on pr.prospect_id = m.prospect_id
left join account as a on a.account_id = coalesce(pr.account_id, m.account_id)
left join stage_prediction as sp on sp.item_id = i.item_id
left join content_item as th
    on th.source_id = i.source_id
    and th.external_id = i.thread_external_id
where not i.is_ours
    and (pr.is_decision_maker or au.author_id in (select author_id from v_author_decision_maker))
