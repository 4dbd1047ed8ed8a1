"""The default namespace: one per project, derived from the git repository of a directory.

A repository with a remote `origin` is named after it (`github.com/org/repo`), so every
clone and worktree of one project shares memory. A repository without a remote is named
after its main worktree's folder plus a short hash of its path (stable across its
worktrees, since they share one common git dir). Outside git: `default`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from memrl import DEFAULT_NAMESPACE
from memrl.validation import NAMESPACE_RE

_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")  # git@host:org/repo.git


def normalise_remote(url: str) -> str | None:
    """`git@github.com:Org/Repo.git` and `https://github.com/Org/Repo` -> `github.com/org/repo`."""
    url = url.strip()
    match = _SCP_LIKE.match(url)
    if match and "://" not in url:
        host, path = match.groups()
    else:
        rest = url.split("://", 1)[-1]
        rest = rest.split("@", 1)[-1]  # drop user:password@
        host, _, path = rest.partition("/")
        host = host.split(":", 1)[0]  # drop a port
    path = path.strip("/").removesuffix(".git").strip("/")
    if not host or not path:
        return None
    name = f"{host}/{path}".lower()
    name = re.sub(r"[^a-z0-9._:/@+-]", "-", name)
    return name if NAMESPACE_RE.fullmatch(name) else None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def namespace_for(directory: str | Path) -> str:
    """The namespace of the project that `directory` belongs to."""
    cwd = Path(directory).resolve()
    common = _git(cwd, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if common is None:
        return DEFAULT_NAMESPACE
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    if remote:
        named = normalise_remote(remote)
        if named:
            return named
    root = Path(common).parent
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    folder = re.sub(r"[^A-Za-z0-9._-]", "-", root.name) or "repo"
    return f"local/{folder}-{digest}"
