"""`python -m receiver ...`: the command line."""

from .cli import main

raise SystemExit(main())
