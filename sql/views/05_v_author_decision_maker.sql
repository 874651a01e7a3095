-- Authors who are decision makers: by their platform title or bio (set when
-- loaded, by transforms.decision_makers), or as a decision-maker prospect.
select
    au.author_id,
    case when au.is_decision_maker then 'title' else 'crm' end as evidence
from author as au
left join author_match as m on m.author_id = au.author_id
left join prospect as p on p.prospect_id = m.prospect_id
where au.is_decision_maker or p.is_decision_maker
