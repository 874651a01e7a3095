-- KPIs per source and ISO week (Monday), with the change against the previous week.
with weekly as (
    select
        {{week_start(f.fact_date)}} as week_start,
        s.name as source_name,
        s.kind as source_kind,
        sum(f.items_published) as items_published,
        sum(f.our_items_published) as our_items_published,
        sum(f.threads_started_by_us) as threads_started_by_us,
        sum(f.threads_started_by_others) as threads_started_by_others,
        sum(f.replies) as replies,
        sum(f.our_replies) as our_replies,
        sum(f.our_follow_ups) as our_follow_ups,
        sum(f.comments) as comments,
        sum(f.likes) as likes,
        sum(f.reposts) as reposts,
        sum(coalesce(f.followers_change, 0)) as followers_net_change,
        sum(f.referrals) as referrals,
        sum(f.decision_makers_active) as decision_maker_days,
        sum(f.prospects_active) as prospect_days,
        sum(f.threads_answered) as threads_answered,
        avg(f.median_response_minutes) as avg_median_response_minutes
    from fct_source_daily as f
    join source as s on s.source_id = f.source_id
    group by {{week_start(f.fact_date)}}, s.name, s.kind
)

select
    weekly.*,
    lag(items_published) over w as items_published_previous,
    items_published - lag(items_published) over w as items_published_change,
    comments + likes + reposts - lag(comments + likes + reposts) over w as engagement_change,
    followers_net_change - lag(followers_net_change) over w as followers_net_change_change,
    referrals - lag(referrals) over w as referrals_change
from weekly
window w as (partition by source_name order by week_start)
