"""`python -m relay`: the operator tools (check, simulate, send, sandbox). See `relay.cli`."""

from relay.cli import main

raise SystemExit(main())
