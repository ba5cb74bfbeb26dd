-- Row level security of the six tables.
--
-- anon (the anonymous studio, anon key): rows whose user_id is NULL, and the children of such projects.
-- authenticated (a signed-in user): only rows whose user_id is auth.uid(), and the children of those
--   projects; a signed-in user does not see the anonymous rows.
-- service_role (syncd and other back-end services): bypasses RLS through its BYPASSRLS attribute.
--
-- Every policy is `for all` with the same test in USING (rows one may read, update or delete) and in
-- WITH CHECK (rows one may write), so nobody can move a row into someone else's project, hand a project
-- to another user, or point a scene or clip at a voice or scene they cannot use.
-- `(select auth.uid())` is evaluated once per statement instead of once per row.

alter table public.projects enable row level security;
alter table public.voices enable row level security;
alter table public.scenes enable row level security;
alter table public.clips enable row level security;
alter table public.exports enable row level security;
alter table public.audio_files enable row level security;

-- projects -----------------------------------------------------------------------------------------

drop policy if exists "anonymous projects" on public.projects;
create policy "anonymous projects" on public.projects
  for all to anon
  using (user_id is null)
  with check (user_id is null);

drop policy if exists "own projects" on public.projects;
create policy "own projects" on public.projects
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- voices -------------------------------------------------------------------------------------------

drop policy if exists "anonymous voices" on public.voices;
create policy "anonymous voices" on public.voices
  for all to anon
  using (user_id is null)
  with check (user_id is null);

drop policy if exists "own voices" on public.voices;
create policy "own voices" on public.voices
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- scenes -------------------------------------------------------------------------------------------

drop policy if exists "scenes of anonymous projects" on public.scenes;
create policy "scenes of anonymous projects" on public.scenes
  for all to anon
  using (
    exists (select from public.projects p where p.id = scenes.project_id and p.user_id is null)
  )
  with check (
    exists (select from public.projects p where p.id = scenes.project_id and p.user_id is null)
    and (voice_id is null
      or exists (select from public.voices v where v.id = scenes.voice_id and v.user_id is null))
  );

drop policy if exists "scenes of own projects" on public.scenes;
create policy "scenes of own projects" on public.scenes
  for all to authenticated
  using (
    exists (select from public.projects p where p.id = scenes.project_id
        and p.user_id = (select auth.uid()))
  )
  with check (
    exists (select from public.projects p where p.id = scenes.project_id
        and p.user_id = (select auth.uid()))
    and (voice_id is null
      or exists (select from public.voices v where v.id = scenes.voice_id
          and v.user_id = (select auth.uid())))
  );

-- clips --------------------------------------------------------------------------------------------

drop policy if exists "clips of anonymous projects" on public.clips;
create policy "clips of anonymous projects" on public.clips
  for all to anon
  using (
    exists (select from public.projects p where p.id = clips.project_id and p.user_id is null)
  )
  with check (
    exists (select from public.projects p where p.id = clips.project_id and p.user_id is null)
    and (scene_id is null
      or exists (select from public.scenes s where s.id = clips.scene_id
          and s.project_id = clips.project_id))
  );

drop policy if exists "clips of own projects" on public.clips;
create policy "clips of own projects" on public.clips
  for all to authenticated
  using (
    exists (select from public.projects p where p.id = clips.project_id
        and p.user_id = (select auth.uid()))
  )
  with check (
    exists (select from public.projects p where p.id = clips.project_id
        and p.user_id = (select auth.uid()))
    and (scene_id is null
      or exists (select from public.scenes s where s.id = clips.scene_id
          and s.project_id = clips.project_id))
  );

-- exports ------------------------------------------------------------------------------------------

drop policy if exists "exports of anonymous projects" on public.exports;
create policy "exports of anonymous projects" on public.exports
  for all to anon
  using (
    exists (select from public.projects p where p.id = exports.project_id and p.user_id is null)
  )
  with check (
    exists (select from public.projects p where p.id = exports.project_id and p.user_id is null)
  );

drop policy if exists "exports of own projects" on public.exports;
create policy "exports of own projects" on public.exports
  for all to authenticated
  using (
    exists (select from public.projects p where p.id = exports.project_id
        and p.user_id = (select auth.uid()))
  )
  with check (
    exists (select from public.projects p where p.id = exports.project_id
        and p.user_id = (select auth.uid()))
  );

-- audio_files --------------------------------------------------------------------------------------

drop policy if exists "audio of anonymous projects" on public.audio_files;
create policy "audio of anonymous projects" on public.audio_files
  for all to anon
  using (
    exists (select from public.projects p where p.id = audio_files.project_id and p.user_id is null)
  )
  with check (
    exists (select from public.projects p where p.id = audio_files.project_id and p.user_id is null)
    and (scene_id is null
      or exists (select from public.scenes s where s.id = audio_files.scene_id
          and s.project_id = audio_files.project_id))
    and (voice_id is null
      or exists (select from public.voices v where v.id = audio_files.voice_id
          and v.user_id is null))
  );

drop policy if exists "audio of own projects" on public.audio_files;
create policy "audio of own projects" on public.audio_files
  for all to authenticated
  using (
    exists (select from public.projects p where p.id = audio_files.project_id
        and p.user_id = (select auth.uid()))
  )
  with check (
    exists (select from public.projects p where p.id = audio_files.project_id
        and p.user_id = (select auth.uid()))
    and (scene_id is null
      or exists (select from public.scenes s where s.id = audio_files.scene_id
          and s.project_id = audio_files.project_id))
    and (voice_id is null
      or exists (select from public.voices v where v.id = audio_files.voice_id
          and v.user_id = (select auth.uid())))
  );
