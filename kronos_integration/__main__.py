"""`python -m kronos_integration`: see `kronos_integration.cli`."""

from kronos_integration.cli import main

raise SystemExit(main())
