"""`python -m sandbox.agent --home DIR`: the node agent process."""

from sandbox.agent.process import main

raise SystemExit(main())
