"""What each bench request looks like and how long each concurrency level runs (no heavy
imports: the CLI's defaults come from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Workload:
    """What each request looks like and how long each concurrency level runs."""

    levels: tuple[int, ...] = (1, 4, 16, 64)
    input_tokens: int = 6000            # whole prompt, shared prefix included
    shared_prefix_tokens: int = 4000     # the same for every request (prefix caching sees it)
    output_tokens: int = 400            # the mean; each request draws from +/- output_spread around it
    output_spread: float = 0.5
    requests_per_level: Optional[int] = None   # None: 4 x concurrency, at least 8
    seconds_per_level: float = 60.0      # no new request after this; in-flight ones finish
    request_timeout: float = 300.0
    seed: int = 0

    def output_range(self) -> tuple[int, int]:
        """Answers vary in length, as agents' do; identical lengths would also make the workers
        of a level finish and start again in lockstep, leaving the engine idle between rounds."""
        lo = max(1, round(self.output_tokens * (1 - self.output_spread)))
        return lo, max(lo, round(self.output_tokens * (1 + self.output_spread)))

    def requests_for(self, concurrency: int) -> int:
        return self.requests_per_level if self.requests_per_level else max(8, 4 * concurrency)
