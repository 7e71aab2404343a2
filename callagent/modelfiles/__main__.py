"""``python -m callagent.modelfiles``: see :mod:`callagent.modelfiles.cli`."""

from callagent.modelfiles.cli import main

raise SystemExit(main())
