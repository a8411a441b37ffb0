"""Exponential backoff with jitter, for every retry the agent makes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from taskscheduler.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Delays between retries: `initial_s`, multiplied by `multiplier` per retry, capped at `max_s`.

    Each delay is drawn uniformly from [(1 - jitter) * d, d], so agents that
    lost the same coordinator do not come back in lockstep.
    """

    initial_s: float = 0.1
    max_s: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s <= 0:
            raise InvalidArgumentError("initialS", f"must be positive, got {self.initial_s}")
        if self.max_s < self.initial_s:
            raise InvalidArgumentError(
                "maxS", f"must be at least initialS ({self.initial_s}), got {self.max_s}"
            )
        if self.multiplier < 1:
            raise InvalidArgumentError("multiplier", f"must be at least 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise InvalidArgumentError("jitter", f"must be between 0 and 1, got {self.jitter}")


class Backoff:
    """The delays of one retry sequence; `reset` after a success starts over."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()
        self.retries = 0

    def next_delay_s(self) -> float:
        policy = self._policy
        # The exponent is capped so that retrying for hours cannot overflow a float.
        growth = policy.multiplier ** min(self.retries, 64)
        ceiling = min(policy.max_s, policy.initial_s * growth)
        self.retries += 1
        return ceiling * (1 - policy.jitter * self._rng.random())

    def reset(self) -> None:
        self.retries = 0
