"""Local stand-ins for the remote services glmserve deploys to.

Each stand-in speaks the real wire protocol of its service on 127.0.0.1, so the real client
library can be pointed at it in tests without network access or credentials.
"""
