"""`python -m league`."""

from league.cli import main

raise SystemExit(main())
