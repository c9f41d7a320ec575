"""``python -m recommend.cli``: the ``recommend`` command."""

from recommend.cli import main

raise SystemExit(main())
