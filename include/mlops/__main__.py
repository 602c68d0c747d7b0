"""Command line: ``python -m mlops <command>``; see ``mlops.cli``."""

from __future__ import annotations

from mlops.cli import main

raise SystemExit(main())
