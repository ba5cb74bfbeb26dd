-- OmegaFrame Studio: the six tables, their timestamps, the version counter and the realtime setup.
--
-- Runs unchanged on a hosted Supabase project (`supabase db push`): it creates no roles or schemas that
-- Supabase owns, and it expects the `supabase_realtime` publication that every Supabase project has.

-- Trigger functions --------------------------------------------------------------------------------

create or replace function public.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

comment on function public.set_updated_at() is
  'BEFORE UPDATE trigger: stamps updated_at with the time of the transaction.';

-- The version counts updates of a row. syncd uses it to recognise its own changes when they come back
-- through Realtime and to order changes; commit timestamps only have millisecond resolution.
create or replace function public.bump_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Whatever the caller wrote into version is discarded: only this trigger moves it.
  new.version := old.version + 1;
  return new;
end
$$;

comment on function public.bump_version() is
  'BEFORE UPDATE trigger: raises version by exactly one on every update, ignoring any value the caller set.';

-- Tables -------------------------------------------------------------------------------------------

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  -- NULL: a project of the anonymous studio (anon key). Inserts by a signed-in user default to that user.
  user_id uuid null default auth.uid() references auth.users (id) on delete cascade,
  title text not null default 'Untitled project',
  script text not null default '',
  status text not null default 'draft'
    check (status in ('draft', 'generating', 'ready', 'exporting', 'archived')),
  aspect_ratio text not null default '16:9'
    check (aspect_ratio in ('16:9', '9:16', '1:1', '4:5')),
  settings jsonb not null default '{}'::jsonb,
  version bigint not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.voices (
  id uuid primary key default gen_random_uuid(),
  user_id uuid null default auth.uid() references auth.users (id) on delete cascade,
  name text not null default '',
  provider text not null default '',
  voice_ref text not null default '',
  sample_url text null,
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.scenes (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  scene_index integer not null default 0,
  heading text not null default '',
  body text not null default '',
  duration double precision not null default 0 check (duration >= 0),
  voice_id uuid null references public.voices (id) on delete set null,
  version bigint not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.clips (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  scene_id uuid null references public.scenes (id) on delete set null,
  provider text not null default '',
  prompt text not null default '',
  file_url text null,
  thumbnail_url text null,
  status text not null default 'pending'
    check (status in ('pending', 'generating', 'ready', 'failed')),
  duration double precision not null default 0,
  trim_start double precision not null default 0,
  trim_end double precision null,
  order_index integer not null default 0,
  metadata jsonb not null default '{}'::jsonb,
  version bigint not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.exports (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'rendering', 'done', 'failed')),
  format text not null default 'mp4'
    check (format in ('mp4', 'webm', 'mov', 'gif')),
  resolution text not null default '1080p',
  progress double precision not null default 0 check (progress between 0 and 1),
  file_url text null,
  error text null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.audio_files (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  scene_id uuid null references public.scenes (id) on delete set null,
  voice_id uuid null references public.voices (id) on delete set null,
  kind text not null default 'voice' check (kind in ('voice', 'music', 'sfx')),
  file_url text null,
  duration double precision not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Indexes: one per foreign key (the cascades and the RLS lookups need them) and the studio's orderings,
-- whose leading project_id also serves the foreign key of scenes and clips.

create index projects_user_id_idx on public.projects (user_id);
create index voices_user_id_idx on public.voices (user_id);
create index scenes_project_id_scene_index_idx on public.scenes (project_id, scene_index);
create index scenes_voice_id_idx on public.scenes (voice_id);
create index clips_project_id_order_index_idx on public.clips (project_id, order_index);
create index clips_scene_id_idx on public.clips (scene_id);
create index exports_project_id_idx on public.exports (project_id);
create index audio_files_project_id_idx on public.audio_files (project_id);
create index audio_files_scene_id_idx on public.audio_files (scene_id);
create index audio_files_voice_id_idx on public.audio_files (voice_id);

-- Triggers -----------------------------------------------------------------------------------------

create trigger set_updated_at before update on public.projects
  for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.voices
  for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.scenes
  for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.clips
  for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.exports
  for each row execute function public.set_updated_at();
create trigger set_updated_at before update on public.audio_files
  for each row execute function public.set_updated_at();

create trigger bump_version before update on public.projects
  for each row execute function public.bump_version();
create trigger bump_version before update on public.scenes
  for each row execute function public.bump_version();
create trigger bump_version before update on public.clips
  for each row execute function public.bump_version();

-- Grants: hosted Supabase grants these by default privileges already; repeating them costs nothing and
-- keeps the tables usable on a database whose defaults were changed. RLS decides what each role sees.

grant all on table
  public.projects, public.voices, public.scenes, public.clips, public.exports, public.audio_files
  to anon, authenticated, service_role;

-- Realtime -----------------------------------------------------------------------------------------

-- Full old rows in UPDATE events; otherwise Realtime leaves unchanged TOASTed columns (long scripts,
-- settings) out of updates. DELETE events on these RLS tables still carry only the primary key.
alter table public.projects replica identity full;
alter table public.scenes replica identity full;
alter table public.clips replica identity full;

-- Add the synced tables to Supabase's publication. Every Supabase project has it (empty at first); the
-- migration adds only what is missing, so it also runs where someone enabled Realtime on a table by hand.
do $$
declare
  synced text;
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    raise exception 'publication supabase_realtime does not exist'
      using hint = 'This migration expects a Supabase database, which always has that publication.';
  end if;
  if (select puballtables from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;
  foreach synced in array array['projects', 'scenes', 'clips'] loop
    if not exists (
      select from pg_catalog.pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = synced
    ) then
      execute format('alter publication supabase_realtime add table public.%I', synced);
    end if;
  end loop;
end
$$;
