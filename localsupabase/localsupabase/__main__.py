"""``python -m localsupabase``: the same as the ``localsupabase`` command."""

from __future__ import annotations

import sys

from localsupabase.cli import main

if __name__ == "__main__":
    sys.exit(main())
