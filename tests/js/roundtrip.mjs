// Round trip of the official supabase-js client against the local Supabase stand-in.
//
// Reads SUPABASE_URL and SUPABASE_ANON_KEY from the environment, then, as the anonymous studio:
//   1. selects the projects over REST (RLS shows only the anonymous ones),
//   2. subscribes over Realtime (the `ws` package is the transport) to INSERTs on public.projects,
//      filtered on the id of a project it is about to create,
//   3. once the server says "Subscribed to PostgreSQL", inserts that project over REST,
//   4. waits for the INSERT to come back as a postgres_changes event.
// Each step prints one JSON line on stdout; the exit status is 0 only if every step worked.

import { randomUUID } from 'node:crypto'

import { createClient } from '@supabase/supabase-js'
import WebSocket from 'ws'

const TIMEOUT_MS = Number(process.env.ROUNDTRIP_TIMEOUT_MS ?? 20000)

function report(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail(where, error) {
  report('error', { where, message: String(error?.message ?? error) })
  process.exit(1)
}

const url = process.env.SUPABASE_URL
const anonKey = process.env.SUPABASE_ANON_KEY
if (!url || !anonKey) fail('environment', 'SUPABASE_URL and SUPABASE_ANON_KEY must be set')

const timer = setTimeout(() => fail('timeout', `no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS)

const supabase = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: { transport: WebSocket },
})

const selected = await supabase.from('projects').select('id,title').order('title')
if (selected.error) fail('select', selected.error)
report('select', { rows: selected.data })

const projectId = randomUUID()
const channel = supabase.channel('js-roundtrip')
const inserted = new Promise((resolve) => {
  channel.on(
    'postgres_changes',
    { event: 'INSERT', schema: 'public', table: 'projects', filter: `id=eq.${projectId}` },
    resolve,
  )
})
const ready = new Promise((resolve, reject) => {
  channel.on('system', {}, (message) => {
    if (message?.status === 'ok' && message?.message === 'Subscribed to PostgreSQL') resolve(message)
    else if (message?.status === 'error') reject(new Error(message.message))
  })
  channel.subscribe((status, error) => {
    report('status', { status })
    if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT' || status === 'CLOSED') {
      reject(error ?? new Error(status))
    }
  })
})
try {
  await ready
} catch (error) {
  fail('subscribe', error)
}
report('ready')

const title = `from supabase-js ${Date.now()}`
const insert = await supabase.from('projects').insert({ id: projectId, title }).select('id,title').single()
if (insert.error) fail('insert', insert.error)
report('insert', { row: insert.data })

const change = await inserted
report('change', {
  eventType: change.eventType,
  schema: change.schema,
  table: change.table,
  new: change.new,
  commit_timestamp: change.commit_timestamp,
  errors: change.errors,
})

clearTimeout(timer)
await supabase.removeAllChannels()
report('done')
process.exit(0)
