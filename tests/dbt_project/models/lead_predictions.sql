-- Built as <schema>_ml.scored_leads: a monitor naming `lead_predictions` must read that relation.
-- The source is the seed crm_leads, which dbt loads first:
-- depends_on: {{ ref('crm_leads') }}
{{ config(alias='scored_leads', schema='ml') }}

select lead_id, scored_at, score, visits, region
from {{ source('crm', 'leads') }}
