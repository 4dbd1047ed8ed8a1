"""One HTTP server for a team: the namespace comes with each request, tokens reach only
their namespaces.

**The namespace of a request.** A shared server runs in no project, so its working
directory says nothing about the caller's. Each request names its project in the
`X-Memrl-Namespace` header (e.g. `github.com/acme/app`, the name `memrl` derives from a
clone's `origin` remote); a tool's explicit `namespace` argument still wins, and without
either the server's `--namespace` applies. MCP roots are not used for this: a root is a
`file://` path on the client's machine, which a remote server cannot open to read its git
remote, and hosts disagree on when they send roots; a header is set once in the host's
configuration and arrives with every request.

**Tokens scoped to namespaces.** A token file (`--token-file`, env MEMRL_TOKEN_FILE) holds
one token per line followed by the namespace patterns it may use (shell-style, `*`
matches across `/`); `#` starts a comment:

    # token                          namespaces
    3f9c...e1   github.com/acme/*
    77ab...0c   github.com/acme/app github.com/acme/docs
    d41d...98   *

A request whose bearer token is not in the file gets 401. A call whose namespace (header,
argument or default) the token does not cover is refused with a tool error and changes
nothing; the stats resource lists only the namespaces the token covers. Reporting a task
is checked twice: the namespace must be the token's, and the task must belong to it
(`Memory.report`), so a token for `github.com/acme/*` can neither read nor report
elsewhere. The `--token` of a plain server stays a single token for every namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from memrl import MemrlError
from memrl.validation import namespace as valid_namespace

NAMESPACE_HEADER = "x-memrl-namespace"
ACCESS_KEY = "memrl_access"


class NamespaceNotAllowed(MemrlError):
    """The request's token does not cover the namespace it names."""


class TokenFileError(MemrlError):
    """The token file is missing or malformed."""


@dataclass(frozen=True)
class Access:
    """The namespaces a caller may use (`patterns` None: all of them)."""

    patterns: tuple[str, ...] | None = None

    def allows(self, namespace: str) -> bool:
        return self.patterns is None or any(fnmatchcase(namespace, p) for p in self.patterns)

    def check(self, namespace: str) -> str:
        if not self.allows(namespace):
            raise NamespaceNotAllowed(
                f"this token may not use namespace {namespace!r}: it covers "
                f"{', '.join(self.patterns or ())}; send X-Memrl-Namespace with one of those "
                "or ask for a token that covers this project"
            )
        return namespace


EVERYTHING = Access()


@dataclass(frozen=True)
class RequestScope:
    """What one request brings: its namespace header and its token's access."""

    namespace: str | None = None
    access: Access = EVERYTHING


_REQUEST: ContextVar[RequestScope] = ContextVar(
    "memrl_request", default=RequestScope()  # noqa: B039 - frozen, never mutated
)


def resolve(explicit: str | None, default: str) -> str:
    """The namespace of the current call, checked against its token."""
    scope = _REQUEST.get()
    chosen = valid_namespace(explicit or scope.namespace or default)
    return scope.access.check(chosen)


def visible(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stats rows the current call's token may see."""
    access = _REQUEST.get().access
    return [r for r in rows if access.allows(r["namespace"])]


def _scope_of(context: Any) -> RequestScope:
    """The RequestScope of an MCP call: from its HTTP request, none over stdio."""
    try:
        request = context.request_context.request if context is not None else None
    except ValueError:  # no request context (a call made in-process)
        request = None
    if request is None or not hasattr(request, "headers"):
        return RequestScope()
    header = request.headers.get(NAMESPACE_HEADER)
    access = request.scope.get("state", {}).get(ACCESS_KEY, EVERYTHING)
    return RequestScope(header or None, access)


class TeamServer(MCPServer[Any]):
    """MCPServer that makes each call's request scope readable by `resolve` and `visible`
    (tools and resources run in the task that sets it)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        token = _REQUEST.set(_scope_of(context))
        try:
            return await super().call_tool(name, arguments, context)
        finally:
            _REQUEST.reset(token)

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        token = _REQUEST.set(_scope_of(context))
        try:
            return await super().read_resource(uri, context)
        finally:
            _REQUEST.reset(token)


def load_tokens(path: Path) -> dict[str, Access]:
    """The token file as {token: Access} (see the module docstring for its format)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TokenFileError(f"cannot read the token file {path}: {e.strerror}") from e
    tokens: dict[str, Access] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2 or len(fields[0]) < 16:
            raise TokenFileError(
                f"{path}:{number}: write a token of at least 16 characters followed by "
                "the namespace patterns it may use (e.g. github.com/acme/*)"
            )
        tokens[fields[0]] = Access(tuple(fields[1:]))
    if not tokens:
        raise TokenFileError(f"{path} holds no token: add lines `TOKEN NAMESPACE-PATTERN...`")
    return tokens
