"""A Lambda-like context object: what handlers (and Powertools) read from ``context``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_ACCOUNT = "123456789012"  # moto's account id

Clock = Callable[[], float]
"""Seconds on a monotonic scale; injected so tests and accelerated runs control time."""


@dataclass
class LambdaContext:
    """Mirrors the attributes of the Python runtime's context that our code may read.

    ``get_remaining_time_in_millis`` counts down from the function's template Timeout on
    ``clock``; it never goes below zero, like the real one.
    """

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: float
    clock: Clock = time.monotonic
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    started_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.started_at = self.clock()
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            self.log_stream_name = f"local/[{self.function_version}]{self.aws_request_id}"

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock()) * 1000))

    @property
    def timed_out(self) -> bool:
        return self.clock() >= self.deadline


def function_arn(function_name: str, region: str, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{function_name}"


def make_context(
    function_name: str,
    *,
    timeout_seconds: float,
    memory_mb: int,
    region: str,
    account: str = DEFAULT_ACCOUNT,
    clock: Clock = time.monotonic,
) -> LambdaContext:
    return LambdaContext(
        function_name=function_name,
        memory_limit_in_mb=memory_mb,
        invoked_function_arn=function_arn(function_name, region, account),
        timeout_seconds=timeout_seconds,
        clock=clock,
    )
