"""The hooks' settings, read once at the entry point (flags, then environment)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .locations import Locations, database_path, hook_home
from .verifiers import Verifiers

DEFAULT_BUDGET = 600  # tokens of injected memories per prompt
DEFAULT_IDLE = 1800.0  # seconds without a request before the daemon exits
HOSTS = ("claude", "codex")
EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SessionEnd",
)


class HookOptions:
    """Everything a hook process needs to know, as one typed object."""

    def __init__(
        self,
        db: str | None = None,
        namespace: str | None = None,
        budget: int | None = None,
        remind: bool = True,
        host: str = "claude",
        verifiers: Verifiers | None = None,
        weak_reward: float = 0.5,
        min_prompt_chars: int = 12,
        daemon: bool = True,
        idle: float | None = None,
        start_timeout: float = 20.0,  # under the plugin's 30 s hook timeout
        disabled: Sequence[str] = (),
    ) -> None:
        env = os.environ
        if host not in HOSTS:
            raise ValueError(f"--host must be one of {', '.join(HOSTS)}, got {host!r}")
        self.locations = Locations(database_path(db), hook_home())
        self.namespace = namespace or env.get("MEMRL_NAMESPACE") or None
        self.budget = (
            budget if budget is not None else _int_env("MEMRL_HOOK_BUDGET", DEFAULT_BUDGET)
        )
        if self.budget < 50:
            raise ValueError(f"the budget must be at least 50 tokens, got {self.budget}")
        self.remind = remind and env.get("MEMRL_HOOK_STOP_REMINDER", "1") not in ("0", "off", "no")
        self.host = host
        self.verifiers = verifiers or Verifiers()
        self.weak_reward = weak_reward
        self.min_prompt_chars = min_prompt_chars
        # the daemon talks over a Unix socket: elsewhere (Windows) the hook works alone
        self.daemon = (
            daemon
            and os.name == "posix"
            and env.get("MEMRL_HOOK_DAEMON", "1") not in ("0", "off", "no")
        )
        self.idle = idle if idle is not None else float(env.get("MEMRL_HOOK_IDLE", DEFAULT_IDLE))
        self.start_timeout = start_timeout
        named = [*disabled, *env.get("MEMRL_HOOK_DISABLE", "").replace(",", " ").split()]
        unknown = sorted(set(named) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown hook events to disable: {unknown}; use {', '.join(EVENTS)}")
        self.disabled = frozenset(named)


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {value!r}") from e
