"""Command line: ``python -m mlops <command>``; see ``mlops.dev.cli``."""

from __future__ import annotations

from mlops.dev.cli import main

raise SystemExit(main())
