-- syncd_mutations keeps one row per (project_id, client_id): the highest mid syncd_apply has applied.
--
-- It kept a row per applied mutation, forever: about 195 bytes with its index entries for every edit
-- anyone ever made (bench/record_growth.py), in a table nothing pruned, so a million edits left 186 MB
-- that no reader needed, since every reader asked the same question: is this mutation applied?
--
-- syncd sends a client's mutations in one order only. It accepts a client's mids of a project strictly
-- increasing (docs/protocol.md §7), and a project's saves run one at a time, each taking every edit
-- accepted before it; a replay after a crash or a failover repeats the unsaved tail in the same order.
-- So the mutations applied for a client are always all of its accepted mids up to the highest, and
-- "is (project, client_id, mid) applied?" is "is mid at most the highest applied for that client?".
-- That is also what syncd answers an editor who resends a mid (§7), and what it already read back at
-- load (syncd_applied_mids). The embedded store (syncd/adapters/local.py) applies the same rule.
--
-- What remains grows with the clients of a project, not with its edits. A client's row is never
-- dropped: without it, a mutation that client resends after a long absence would be applied again.

-- Only each client's highest mid is kept; the rows below it say nothing the highest does not.
delete from public.syncd_mutations as m
where exists (
  select from public.syncd_mutations as h
  where h.project_id = m.project_id and h.client_id = m.client_id and h.mid > m.mid
);

alter table public.syncd_mutations drop constraint syncd_mutations_pkey;
alter table public.syncd_mutations add constraint syncd_mutations_pkey primary key (project_id, client_id);
-- It was there for pruning old rows, which no longer exist to prune.
drop index if exists public.syncd_mutations_applied_at_idx;

comment on table public.syncd_mutations is
  'Per project and client_id, the highest mid syncd_apply has applied; every mid up to it counts as applied.';
comment on column public.syncd_mutations.applied_at is 'When mid was raised to its current value.';

-- syncd_apply_unfenced (syncd_apply since 20261201000009_syncd_fences.sql calls it after its fence
-- check): the function of 20261201000001_syncd_mutations_by_project.sql but for the three lookups of an
-- applied mutation, which now ask for a mid at or above it, and the final write of the record, which
-- raises each client's highest mid.

create or replace function public.syncd_apply_unfenced(batch jsonb) returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  -- What an editor may write, per table: the same sets as EDITABLE_FIELDS in syncd/core/schema.py.
  editable constant jsonb := '{
    "projects": ["title", "script", "status", "aspect_ratio", "settings"],
    "scenes": ["scene_index", "heading", "body", "duration", "voice_id"],
    "clips": ["scene_id", "provider", "prompt", "file_url", "thumbnail_url", "status", "duration",
              "trim_start", "trim_end", "order_index", "metadata"]
  }';
  -- Columns only the database sets (READ_ONLY_FIELDS in syncd/core/schema.py).
  read_only constant text[] := array['id', 'project_id', 'user_id', 'version', 'created_at', 'updated_at'];
  -- An inserted row may carry these; the row's own values are never used (id must match the op's).
  insert_ignored constant text[] := array['id', 'project_id', 'version', 'created_at', 'updated_at'];
  uuid_text constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
  -- A mutation id: [client_id, mid], a string and an integer.
  mutation_shape constant jsonpath :=
    '$.type() == "array" && $.size() == 2 && $[0].type() == "string" && $[1].type() == "number"
     && $[1] == $[1].floor()';

  project uuid;
  project_exists boolean;
  op jsonb;
  op_no integer := 0;
  kind text;
  tbl text;
  id_text text;
  row_id uuid;
  owner_column text;
  author jsonb;
  field text;
  entry jsonb;
  vals jsonb;
  cols text[];
  touched_tables text[] := '{}';
  touched_ids text[] := '{}';
  answer jsonb;
begin
  if jsonb_typeof(batch) is distinct from 'object' then
    raise exception using errcode = '22023', message = 'syncd_apply: the batch must be a JSON object';
  end if;
  if jsonb_typeof(batch -> 'project_id') is distinct from 'string'
      or not (batch ->> 'project_id') ~ uuid_text then
    raise exception using errcode = '22023', message = 'syncd_apply: batch.project_id must be a uuid';
  end if;
  if jsonb_typeof(batch -> 'ops') is distinct from 'array' then
    raise exception using errcode = '22023', message = 'syncd_apply: batch.ops must be an array';
  end if;
  if jsonb_typeof(batch -> 'mutations') is distinct from 'array' then
    raise exception using errcode = '22023', message = 'syncd_apply: batch.mutations must be an array';
  end if;
  if exists (
    select from jsonb_array_elements(batch -> 'mutations') as m (id)
    where not coalesce(jsonb_path_match(m.id, mutation_shape), false)
  ) then
    raise exception using errcode = '22023',
      message = 'syncd_apply: every entry of batch.mutations must be [client_id, mid]';
  end if;
  project := (batch ->> 'project_id')::uuid;

  -- Batches of one project run one at a time, so that "is this mutation recorded?" cannot change
  -- between the check and the write (a retry racing its original attempt applies nothing twice).
  perform pg_advisory_xact_lock(hashtext(project::text));

  -- The key share lock keeps the project from being deleted while its rows are written. A batch of a
  -- project that is gone changes nothing and reports every row it names as missing.
  perform from public.projects where id = project for key share;
  project_exists := found;

  for op in select o.value from jsonb_array_elements(batch -> 'ops') as o loop
    op_no := op_no + 1;
    if jsonb_typeof(op) is distinct from 'object' then
      raise exception using errcode = '22023', message = format('syncd_apply: op %s is not an object', op_no);
    end if;
    kind := op ->> 'op';
    tbl := op ->> 'table';
    if tbl is null or not (editable ? tbl) then
      raise exception using errcode = '22023',
        message = format('syncd_apply: op %s: table %L is not synced (projects, scenes, clips)', op_no, tbl);
    end if;
    id_text := op ->> 'id';
    if jsonb_typeof(op -> 'id') is distinct from 'string' or not id_text ~ uuid_text then
      raise exception using errcode = '22023', message = format('syncd_apply: op %s: id must be a uuid', op_no);
    end if;
    row_id := id_text::uuid;
    owner_column := case tbl when 'projects' then 'id' else 'project_id' end;

    if kind in ('insert', 'delete') then
      if tbl = 'projects' then
        raise exception using errcode = '22023',
          message = format('syncd_apply: op %s: a batch cannot %s projects rows', op_no, kind);
      end if;
      author := op -> 'by';
      if not coalesce(jsonb_path_match(author, mutation_shape), false) then
        raise exception using errcode = '22023',
          message = format('syncd_apply: op %s: by must be [client_id, mid]', op_no);
      end if;
    end if;

    case kind
    when 'delete' then
      if not exists (
        select from public.syncd_mutations m
        where m.project_id = project and m.client_id = author ->> 0 and m.mid >= (author -> 1)::numeric::bigint
      ) then
        execute format('delete from public.%I where id = $1 and project_id = $2', tbl)
          using row_id, project;
      end if;

    when 'insert' then
      if jsonb_typeof(op -> 'row') is distinct from 'object' then
        raise exception using errcode = '22023',
          message = format('syncd_apply: op %s: row must be an object', op_no);
      end if;
      cols := '{}';
      for field in select k from jsonb_object_keys(op -> 'row') as k loop
        if field = 'id' then
          if jsonb_typeof(op -> 'row' -> 'id') is distinct from 'string'
              or not (op -> 'row' ->> 'id') ~ uuid_text
              or (op -> 'row' ->> 'id')::uuid <> row_id then
            raise exception using errcode = '22023',
              message = format('syncd_apply: op %s: row.id differs from the op''s id', op_no);
          end if;
        elsif field = any (insert_ignored) then
          null;
        elsif editable -> tbl ? field then
          cols := cols || field;
        elsif field = any (read_only) then
          raise exception using errcode = '22023',
            message = format('syncd_apply: op %s: column %s.%s cannot be written', op_no, tbl, field);
        else
          raise exception using errcode = '22023',
            message = format('syncd_apply: op %s: unknown column %s.%s', op_no, tbl, field);
        end if;
      end loop;
      if project_exists and not exists (
        select from public.syncd_mutations m
        where m.project_id = project and m.client_id = author ->> 0 and m.mid >= (author -> 1)::numeric::bigint
      ) then
        vals := op -> 'row';
        -- A reference to a row that is gone becomes NULL (see the update branch).
        if tbl = 'clips' and jsonb_typeof(vals -> 'scene_id') = 'string' and (vals ->> 'scene_id') ~ uuid_text then
          perform from public.scenes where id = (vals ->> 'scene_id')::uuid and project_id = project for key share;
          if not found then
            vals := jsonb_set(vals, '{scene_id}', 'null');
          end if;
        elsif tbl = 'scenes' and jsonb_typeof(vals -> 'voice_id') = 'string' and (vals ->> 'voice_id') ~ uuid_text then
          perform from public.voices where id = (vals ->> 'voice_id')::uuid for key share;
          if not found then
            vals := jsonb_set(vals, '{voice_id}', 'null');
          end if;
        end if;
        -- Only the columns the row names are written; the others take their defaults. An id that
        -- exists already (here or, by a collision, in another project) keeps its row untouched.
        execute format(
          'insert into public.%I (id, project_id%s) select $1, $2%s '
            'from jsonb_populate_record(null::public.%I, $3) as r on conflict (id) do nothing',
          tbl,
          (select coalesce(string_agg(format(', %I', c), ''), '') from unnest(cols) as c),
          (select coalesce(string_agg(format(', r.%I', c), ''), '') from unnest(cols) as c),
          tbl)
          using row_id, project, vals;
      end if;

    when 'update' then
      if jsonb_typeof(op -> 'set') is distinct from 'object' then
        raise exception using errcode = '22023',
          message = format('syncd_apply: op %s: set must be an object', op_no);
      end if;
      cols := '{}';
      vals := '{}';
      for field, entry in select s.key, s.value from jsonb_each(op -> 'set') as s loop
        if not (editable -> tbl ? field) then
          if field = any (read_only) then
            raise exception using errcode = '22023',
              message = format('syncd_apply: op %s: column %s.%s cannot be written', op_no, tbl, field);
          end if;
          raise exception using errcode = '22023',
            message = format('syncd_apply: op %s: unknown column %s.%s', op_no, tbl, field);
        end if;
        if jsonb_typeof(entry) is distinct from 'object' or not entry ? 'value'
            or not coalesce(jsonb_path_match(entry -> 'by', mutation_shape), false) then
          raise exception using errcode = '22023',
            message = format('syncd_apply: op %s: set.%s must be {"value", "by": [client_id, mid]}',
              op_no, field);
        end if;
        if not exists (
          select from public.syncd_mutations m
          where m.project_id = project and m.client_id = entry -> 'by' ->> 0 and m.mid >= (entry -> 'by' -> 1)::numeric::bigint
        ) then
          cols := cols || field;
          vals := vals || jsonb_build_object(field, entry -> 'value');
        end if;
      end loop;
      -- A clip whose scene another writer deleted (or a scene whose voice is gone) would make the whole
      -- batch fail on its foreign key for good, and with it every edit of the project. The reference is
      -- written as NULL instead, what "on delete set null" does had the delete come a moment later; a
      -- scene of another project counts as gone. The key share lock keeps a found row until commit.
      if tbl = 'clips' and jsonb_typeof(vals -> 'scene_id') = 'string' and (vals ->> 'scene_id') ~ uuid_text then
        perform from public.scenes where id = (vals ->> 'scene_id')::uuid and project_id = project for key share;
        if not found then
          vals := jsonb_set(vals, '{scene_id}', 'null');
        end if;
      elsif tbl = 'scenes' and jsonb_typeof(vals -> 'voice_id') = 'string' and (vals ->> 'voice_id') ~ uuid_text then
        perform from public.voices where id = (vals ->> 'voice_id')::uuid for key share;
        if not found then
          vals := jsonb_set(vals, '{voice_id}', 'null');
        end if;
      end if;
      -- One statement for all the fields, so the version trigger steps once; none left, no statement.
      if cardinality(cols) > 0 then
        execute format(
          'update public.%I as t set %s from jsonb_populate_record(null::public.%I, $1) as r '
            'where t.id = $2 and t.%I = $3',
          tbl,
          (select string_agg(format('%I = r.%I', c, c), ', ') from unnest(cols) as c),
          tbl,
          owner_column)
          using vals, row_id, project;
      end if;

    else
      raise exception using errcode = '22023',
        message = format('syncd_apply: op %s: unknown op %L (insert, update, delete)', op_no, kind);
    end case;

    touched_tables := touched_tables || tbl;
    touched_ids := touched_ids || id_text;
  end loop;

  if project_exists then
    insert into public.syncd_mutations as r (project_id, client_id, mid)
    select project, m.id ->> 0, max((m.id -> 1)::numeric::bigint)
    from jsonb_array_elements(batch -> 'mutations') as m (id)
    group by m.id ->> 0
    on conflict (project_id, client_id) do update set mid = excluded.mid, applied_at = now()
      where excluded.mid > r.mid;
  end if;

  -- Each touched row once, in the order the batch first named it: its row as it is now when it exists
  -- in this project, else its id in "missing" (spelled as the batch spelled it).
  with touched as (
    select t.tbl, t.id_text::uuid as id, (array_agg(t.id_text order by t.ord))[1] as id_text,
      min(t.ord) as ord
    from unnest(touched_tables, touched_ids) with ordinality as t (tbl, id_text, ord)
    group by t.tbl, t.id_text::uuid
  ),
  present as (
    select t.ord, t.tbl, to_jsonb(p) as data
    from touched as t join public.projects as p on p.id = t.id and p.id = project
    where t.tbl = 'projects'
    union all
    select t.ord, t.tbl, to_jsonb(s) as data
    from touched as t join public.scenes as s on s.id = t.id and s.project_id = project
    where t.tbl = 'scenes'
    union all
    select t.ord, t.tbl, to_jsonb(c) as data
    from touched as t join public.clips as c on c.id = t.id and c.project_id = project
    where t.tbl = 'clips'
  )
  select jsonb_build_object(
    'rows', coalesce(
      (select jsonb_agg(jsonb_build_object('table', f.tbl, 'row', f.data) order by f.ord) from present as f),
      '[]'::jsonb),
    'missing', coalesce(
      (select jsonb_agg(jsonb_build_object('table', t.tbl, 'id', t.id_text) order by t.ord)
       from touched as t where not exists (select from present as f where f.ord = t.ord)),
      '[]'::jsonb))
  into answer;
  return answer;
end
$$;

-- syncd_applied_mids: the record is the answer now.

create or replace function public.syncd_applied_mids(project uuid) returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(jsonb_object_agg(m.client_id, m.mid), '{}'::jsonb)
  from public.syncd_mutations as m
  where m.project_id = project
$$;
