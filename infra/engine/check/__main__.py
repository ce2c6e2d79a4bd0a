"""``python -m infra.engine.check``: see infra/engine/check/command.py."""
import sys

from infra.engine.check.command import main

sys.exit(main())
