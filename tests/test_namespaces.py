"""Default namespaces derived from the git repository of the working directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from memrl_server.namespaces import namespace_for, normalise_remote


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:Acme/App.git", "github.com/acme/app"),
        ("https://github.com/Acme/App", "github.com/acme/app"),
        ("https://github.com/acme/app.git/", "github.com/acme/app"),
        ("ssh://git@gitlab.example.com:2222/group/sub/app.git", "gitlab.example.com/group/sub/app"),
        ("https://user:pw@bitbucket.org/team/app.git", "bitbucket.org/team/app"),
        ("not a url", None),
    ],
)
def test_remote_urls_normalise_to_one_name(url: str, expected: str | None):
    assert normalise_remote(url) == expected


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "my-repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "f.txt").write_text("x")
    _git(root, "add", "f.txt")
    _git(root, "commit", "-qm", "init")
    (root / "sub").mkdir()
    return root


def test_outside_git_is_default(tmp_path: Path):
    assert namespace_for(tmp_path) == "default"


def test_local_repo_is_stable_across_subdirs_and_worktrees(repo: Path, tmp_path: Path):
    name = namespace_for(repo)
    assert name.startswith("local/my-repo-")
    assert namespace_for(repo / "sub") == name
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "feature")
    assert namespace_for(tmp_path / "wt") == name


def test_repo_with_remote_is_named_after_it_in_every_clone(repo: Path, tmp_path: Path):
    _git(repo, "remote", "add", "origin", "git@github.com:Acme/App.git")
    assert namespace_for(repo) == "github.com/acme/app"
    _git(tmp_path, "clone", "-q", str(repo), "clone2")
    _git(tmp_path / "clone2", "remote", "set-url", "origin", "https://github.com/acme/app")
    assert namespace_for(tmp_path / "clone2") == "github.com/acme/app"


def test_served_namespace_follows_the_working_directory(repo: Path, tmp_path: Path):
    from memrl_server.cli import build_parser, settings_from

    _git(repo, "remote", "add", "origin", "https://github.com/acme/app.git")
    args = build_parser().parse_args(["serve", "--db", str(tmp_path / "m.db")])
    import os

    old = Path.cwd()
    os.chdir(repo / "sub")
    try:
        assert settings_from(args).namespace == "github.com/acme/app"
    finally:
        os.chdir(old)
