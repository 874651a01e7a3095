-- How engagement accrues after publishing: new engagement by hours since publication.
with bucketed as (
    select
        e.source_id,
        case
            when e.hours_since_published < 6 then '00-06h'
            when e.hours_since_published < 12 then '06-12h'
            when e.hours_since_published < 24 then '12-24h'
            when e.hours_since_published < 36 then '24-36h'
            when e.hours_since_published < 48 then '36-48h'
            when e.hours_since_published < 72 then '48-72h'
            when e.hours_since_published < 168 then '3-7d'
            else '7d+'
        end as age_bucket,
        e.engagement_change
    from fct_item_engagement as e
    where e.hours_since_published is not null
),

totals as (
    select source_id, sum(engagement_change) as total
    from bucketed
    group by source_id
)

select
    s.name as source_name,
    b.age_bucket,
    sum(b.engagement_change) as new_engagement,
    case when t.total > 0 then sum(b.engagement_change) * 1.0 / t.total end as share_of_engagement
from bucketed as b
join source as s on s.source_id = b.source_id
join totals as t on t.source_id = b.source_id
group by s.name, b.age_bucket, t.total
