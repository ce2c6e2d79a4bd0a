"""Run the engine stand-in by hand (e.g. to try `glmserve bench`, docs/bench.md):

    python -m tests.standins.engine --port 8011 --first-token-delay 0.2 --tokens-per-second 30 --capacity 12

Without --api-key every key is accepted. Stops on Ctrl-C."""
from __future__ import annotations

import argparse
import threading

from .server import EngineStandin


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.standins.engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8011)
    p.add_argument("--model", default="glm-5.2-fp8", help="the served model name (the dev stack's modelName)")
    p.add_argument("--api-key")
    p.add_argument("--first-token-delay", type=float, default=0.0)
    p.add_argument("--tokens-per-second", type=float)
    p.add_argument("--capacity", type=int)
    p.add_argument("--fail-every", type=int, default=0)
    a = p.parse_args()
    engine = EngineStandin(a.model, api_key=a.api_key, first_token_delay=a.first_token_delay,
                           tokens_per_second=a.tokens_per_second, capacity=a.capacity, fail_every=a.fail_every,
                           port=a.port)
    with engine:
        print(f"engine stand-in on {engine.url}/v1 (model {a.model})", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
