"""The Pulumi program's entry point: plain `pulumi preview/up/refresh/destroy` start it through
the Python language host in the `.venv` that Pulumi.yaml names; `glmserve <op>` runs the same
CLI command (infra/deploy/workspace.py)."""
from infra.deploy.program import program

program()
