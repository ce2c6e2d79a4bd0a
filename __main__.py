"""Entry point for `pulumi up` run by hand (needs the Python language host);
`glmserve up` runs the same program through the Automation API."""
from infra.deploy.program import program

program()
