-- Storage buckets of the studio and who may use their objects.
--
-- Object names start with the project they belong to: projects/{project_id}/clips/…, …/audio/…,
-- …/final/… (exports) and …/thumbnails/…. An object follows its project: the anonymous studio may use the
-- objects of anonymous projects, a signed-in user those of their own projects. service_role bypasses RLS.
-- Public buckets (thumbnails) are also readable by URL without any policy, as Supabase Storage does.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
  ('clips', 'clips', false, 524288000, array['video/*']),
  ('audio', 'audio', false, 104857600, array['audio/*']),
  ('exports', 'exports', false, 2147483648, array['video/*', 'image/gif']),
  ('thumbnails', 'thumbnails', true, 5242880, array['image/*'])
on conflict (id) do nothing;

-- The project of an object name, or NULL when the name is not projects/{uuid}/…; the cast is guarded
-- so that a badly named object makes the policy false instead of failing the whole statement.
create or replace function public.storage_object_project_id(object_name text) returns uuid
language sql immutable
set search_path = ''
as $$
  select case
    when folders[1] = 'projects'
      and folders[2] ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    then folders[2]::uuid
  end
  from (select storage.foldername(object_name) as folders) as f
$$;

comment on function public.storage_object_project_id(text) is
  'The project id of a storage object named projects/{project_id}/…, NULL for any other name.';

drop policy if exists "studio files of anonymous projects" on storage.objects;
create policy "studio files of anonymous projects" on storage.objects
  for all to anon
  using (
    bucket_id in ('clips', 'audio', 'exports', 'thumbnails')
    and exists (
      select from public.projects p
      where p.id = public.storage_object_project_id(objects.name) and p.user_id is null
    )
  )
  with check (
    bucket_id in ('clips', 'audio', 'exports', 'thumbnails')
    and exists (
      select from public.projects p
      where p.id = public.storage_object_project_id(objects.name) and p.user_id is null
    )
  );

drop policy if exists "studio files of own projects" on storage.objects;
create policy "studio files of own projects" on storage.objects
  for all to authenticated
  using (
    bucket_id in ('clips', 'audio', 'exports', 'thumbnails')
    and exists (
      select from public.projects p
      where p.id = public.storage_object_project_id(objects.name) and p.user_id = (select auth.uid())
    )
  )
  with check (
    bucket_id in ('clips', 'audio', 'exports', 'thumbnails')
    and exists (
      select from public.projects p
      where p.id = public.storage_object_project_id(objects.name) and p.user_id = (select auth.uid())
    )
  );
