"""``python -m chirp``: the command line (see chirp.cli)."""

from .cli import main

raise SystemExit(main())
