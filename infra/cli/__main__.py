"""`python -m infra.cli`: the glmserve command, run from a project checkout."""
import sys

from infra.cli.main import main

sys.exit(main())
