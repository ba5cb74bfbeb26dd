-- Fencing for cluster mode (docs/scaling.md): syncd_apply refuses a batch of an instance that no longer
-- owns its project.
--
-- In cluster mode each batch carries "fence": the fencing token of the instance's ownership lease (a
-- JetStream key-value revision, higher for every new owner). syncd_fences keeps the highest token seen
-- per project; a batch whose fence is below it is refused with SQLSTATE SYF01 ("stale owner") and
-- changes nothing. A batch without "fence" (single-process mode) is not checked. The embedded store
-- (syncd/adapters/local.py) applies the same rule; tests/adapters/apply_conformance.py holds the cases.
--
-- syncd_apply of 20261126000004 becomes syncd_apply_unfenced, unchanged; the new syncd_apply checks and
-- records the fence, then calls it in the same transaction.

-- syncd_fences -------------------------------------------------------------------------------------

create table public.syncd_fences (
  project_id uuid primary key references public.projects (id) on delete cascade,
  token bigint not null check (token >= 0),
  raised_at timestamptz not null default now()
);

comment on table public.syncd_fences is
  'Highest fencing token syncd_apply has seen per project; batches with a lower "fence" are refused.';

-- No policies: anon and authenticated see and write nothing; service_role bypasses RLS.
alter table public.syncd_fences enable row level security;

grant select, insert, update, delete on table public.syncd_fences to service_role;

-- syncd_apply --------------------------------------------------------------------------------------

alter function public.syncd_apply(jsonb) rename to syncd_apply_unfenced;

comment on function public.syncd_apply_unfenced(jsonb) is
  'The apply rule of syncd_apply without the fence check; called by syncd_apply.';

create function public.syncd_apply(batch jsonb) returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  uuid_text constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
  fence jsonb := case when jsonb_typeof(batch) = 'object' then batch -> 'fence' end;
  project uuid;
  highest bigint;
begin
  -- No fence (single-process mode), or a batch the apply rule refuses anyway: nothing to check here.
  if fence is null or jsonb_typeof(fence) = 'null' then
    return public.syncd_apply_unfenced(batch);
  end if;
  if jsonb_typeof(fence) is distinct from 'number' or fence::numeric <> floor(fence::numeric)
      or fence::numeric < 0 or fence::numeric > 9223372036854775807 then
    raise exception using errcode = '22023',
      message = 'syncd_apply: batch.fence must be a non-negative integer';
  end if;
  if jsonb_typeof(batch -> 'project_id') is distinct from 'string' or not (batch ->> 'project_id') ~ uuid_text then
    return public.syncd_apply_unfenced(batch);
  end if;
  project := (batch ->> 'project_id')::uuid;

  -- The lock syncd_apply_unfenced takes too (it is held by the transaction, so taking it twice is
  -- fine): the check below and the writes after it see no other batch of the project in between.
  perform pg_advisory_xact_lock(hashtext(project::text));

  select f.token into highest from public.syncd_fences as f where f.project_id = project for update;
  if highest is not null and fence::numeric < highest then
    raise exception using errcode = 'SYF01',
      message = format('syncd_apply: stale owner: fence %s is below %s, the highest seen for project %s',
        fence::numeric, highest, project);
  end if;

  -- A project that does not exist has nothing to protect (and the apply rule changes nothing of it).
  insert into public.syncd_fences (project_id, token)
  select project, fence::numeric::bigint
  where exists (select from public.projects as p where p.id = project)
  on conflict (project_id) do update
    set token = greatest(public.syncd_fences.token, excluded.token), raised_at = now()
    where public.syncd_fences.token < excluded.token;

  return public.syncd_apply_unfenced(batch);
end
$$;

comment on function public.syncd_apply(jsonb) is
  'Applies one syncd write batch (syncd/core/batch.py) exactly once, refusing a stale owner''s fence (SYF01).';

revoke execute on function public.syncd_apply(jsonb) from public, anon, authenticated;
grant execute on function public.syncd_apply(jsonb) to service_role;
revoke execute on function public.syncd_apply_unfenced(jsonb) from public, anon, authenticated;
grant execute on function public.syncd_apply_unfenced(jsonb) to service_role;
