-- Demo data for a local stack (`supabase db reset`) and for the tests: one project of the anonymous
-- studio (user_id NULL), so the anon key can open it at once. The ids are fixed so that docs and tests
-- can name them:
--   project  0f000000-0000-4000-8000-000000000001  "Demo: The Lighthouse"
--   voice    0f000000-0000-4000-8000-000000000101
--   scenes   0f000000-0000-4000-8000-000000000201 … 203
--   clips    0f000000-0000-4000-8000-000000000301 … 303
-- Re-running it leaves existing rows alone.

insert into public.voices (id, user_id, name, provider, voice_ref, settings)
values (
  '0f000000-0000-4000-8000-000000000101', null, 'Keeper (narrator)', 'demo', 'narrator-warm-1',
  '{"stability": 0.6, "speed": 0.95}'
)
on conflict (id) do nothing;

insert into public.projects (id, user_id, title, script, status, aspect_ratio, settings)
values (
  '0f000000-0000-4000-8000-000000000001',
  null,
  'Demo: The Lighthouse',
  E'At dusk the keeper climbs the spiral stairs.\n\n'
  || E'The lamp turns; its beam sweeps the restless sea.\n\n'
  || E'Far out, a small boat turns toward the light and home.',
  'draft',
  '16:9',
  '{"fps": 30, "resolution": "1080p", "music": "calm-strings"}'
)
on conflict (id) do nothing;

insert into public.scenes (id, project_id, scene_index, heading, body, duration, voice_id)
values
  ('0f000000-0000-4000-8000-000000000201', '0f000000-0000-4000-8000-000000000001', 0,
   'Dusk', 'At dusk the keeper climbs the spiral stairs.', 6.0,
   '0f000000-0000-4000-8000-000000000101'),
  ('0f000000-0000-4000-8000-000000000202', '0f000000-0000-4000-8000-000000000001', 1,
   'The lamp', 'The lamp turns; its beam sweeps the restless sea.', 7.5,
   '0f000000-0000-4000-8000-000000000101'),
  ('0f000000-0000-4000-8000-000000000203', '0f000000-0000-4000-8000-000000000001', 2,
   'Homeward', 'Far out, a small boat turns toward the light and home.', 8.0,
   '0f000000-0000-4000-8000-000000000101')
on conflict (id) do nothing;

insert into public.clips (
  id, project_id, scene_id, provider, prompt, status, duration, trim_start, trim_end, order_index, metadata
)
values
  ('0f000000-0000-4000-8000-000000000301', '0f000000-0000-4000-8000-000000000001',
   '0f000000-0000-4000-8000-000000000201', 'demo',
   'An old keeper climbing a spiral staircase inside a lighthouse at dusk, warm lantern light',
   'pending', 6.0, 0, null, 0, '{"seed": 101}'),
  ('0f000000-0000-4000-8000-000000000302', '0f000000-0000-4000-8000-000000000001',
   '0f000000-0000-4000-8000-000000000202', 'demo',
   'A lighthouse beam sweeping across a stormy sea at night, wide shot',
   'pending', 7.5, 0, null, 1, '{"seed": 102}'),
  ('0f000000-0000-4000-8000-000000000303', '0f000000-0000-4000-8000-000000000001',
   '0f000000-0000-4000-8000-000000000203', 'demo',
   'A small fishing boat turning toward a distant lighthouse, calm water at first light',
   'pending', 8.0, 0, null, 2, '{"seed": 103}')
on conflict (id) do nothing;
