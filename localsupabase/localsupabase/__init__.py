"""A local stand-in for Supabase (REST, Realtime, Storage) over a real PostgreSQL, used by the tests."""
