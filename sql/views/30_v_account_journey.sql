-- Each account's current buying-journey stage, since when, and whether it is moving.
with ranked as (
    select
        h.account_id,
        h.stage,
        h.entered_date,
        h.previous_stage,
        row_number() over (partition by h.account_id order by h.entered_date desc) as recency
    from account_stage_history as h
),

current_stage as (
    select account_id, stage, entered_date, previous_stage
    from ranked
    where recency = 1
),

stage_rank as (
    select 'awareness' as stage, 1 as rank_value
    union all select 'consideration', 2
    union all select 'evaluation', 3
    union all select 'decision', 4
    union all select 'adoption', 5
),

activity as (
    select
        account_id,
        max(fact_date) as last_active_date,
        sum(items) as items,
        sum(decision_makers_active) as decision_maker_days
    from fct_account_daily
    group by account_id
)

select
    a.account_id,
    a.name as account_name,
    a.domain,
    a.owner,
    a.is_target,
    c.stage as current_stage,
    c.entered_date as stage_entered_date,
    c.previous_stage,
    {{days_between({{today}}, c.entered_date)}} as days_in_stage,
    case
        when c.previous_stage is null then 'new'
        when r_now.rank_value > r_before.rank_value then 'forward'
        when r_now.rank_value < r_before.rank_value then 'backward'
        else 'steady'
    end as momentum,
    act.last_active_date,
    act.items,
    act.decision_maker_days
from account as a
join current_stage as c on c.account_id = a.account_id
left join stage_rank as r_now on r_now.stage = c.stage
left join stage_rank as r_before on r_before.stage = c.previous_stage
left join activity as act on act.account_id = a.account_id
