"""A local stand-in for a Supabase project: PostgREST, Storage and Realtime in front of a real PostgreSQL.

:class:`localsupabase.app.LocalSupabase` serves a database you already have; the ``localsupabase``
command (:mod:`localsupabase.cli`) also makes a throwaway PostgreSQL 15 cluster for it.
"""

__version__ = "0.1.0"
