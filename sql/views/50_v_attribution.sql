-- Referrals to our content: which content and which sources and posts sent visitors.
select
    r.referral_id,
    r.referral_date,
    r.sessions,
    r.referrer_host,
    r.referrer_url,
    r.landing_url,
    r.utm_source,
    r.utm_medium,
    r.utm_campaign,
    landing.title as landing_title,
    rs.name as referring_source,
    referring.title as referring_title,
    ra.display_name as referring_author,
    case
        when referring.item_id is null then 'unknown'
        when referring.is_ours then 'us'
        else 'community'
    end as credit
from referral as r
left join content_item as landing on landing.item_id = r.landing_item_id
left join content_item as referring on referring.item_id = r.referring_item_id
left join author as ra on ra.author_id = referring.author_id
left join source as rs on rs.source_id = r.source_id
