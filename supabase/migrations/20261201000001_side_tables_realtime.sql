-- Exports and audio files reach the editors too: syncd follows them through Realtime, as it follows
-- projects, scenes and clips, and passes their changes on in each project's stream (read-only there).

alter table public.exports replica identity full;
alter table public.audio_files replica identity full;

do $$
declare
  side text;
begin
  if (select puballtables from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;
  foreach side in array array['exports', 'audio_files'] loop
    if not exists (
      select from pg_catalog.pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = side
    ) then
      execute format('alter publication supabase_realtime add table public.%I', side);
    end if;
  end loop;
end
$$;
