"""The inspection page over HTTP, as real processes: who may open it, what a form needs,
the export, bad input, the page at /ui of `memrl serve --http` behind its token, and the
page on a PostgreSQL database (`memrl ui --db postgresql://...`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from backends import Backend
from mcp_helpers import free_port, start_http_server
from ui_helpers import start_ui, stop, wait_ready

from memrl import open_memory
from memrl.transfer import export_lines

NS = "github.com/acme/ui"
TOKEN = "s3cret-ui-token"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, real_model) -> Path:
    path = tmp_path_factory.mktemp("uihttp") / "m.db"
    memory = open_memory(path, embedder=real_model)
    for i in range(3):
        memory.store_experience(f"deploy the service to stage {i}", f"step {i}: make deploy", namespace=NS)
    memory.report(memory.recall("deploy the service", NS).task_id, success=True)
    memory.close()
    return path


@pytest.fixture(scope="module")
def ui(db: Path) -> Iterator[str]:
    proc, port = start_ui(db, NS)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def client(**kw) -> httpx2.Client:
    return httpx2.Client(follow_redirects=False, timeout=60, **kw)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_pages_carry_a_policy_without_scripts(ui: str):
    with client() as c:
        r = c.get(f"{ui}/ui/memories", params={"ns": NS})
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script" not in policy
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"


def test_a_foreign_host_name_is_refused(ui: str):
    """A page whose DNS name was rebound to 127.0.0.1 must not read the memory."""
    with client() as c:
        r = c.get(f"{ui}/ui/memories", params={"ns": NS}, headers={"host": "evil.example"})
    assert r.status_code == 421 and "open the page at 127.0.0.1" in r.text


def test_forget_needs_the_form_and_a_same_origin(ui: str, db: Path, real_model):
    with client() as c:
        page = c.get(f"{ui}/ui/memory/1/forget")
        token = csrf_of(page.text)
        stale = c.post(f"{ui}/ui/memory/1/forget", data={"csrf": "guess", "ns": NS})
        foreign = c.post(
            f"{ui}/ui/memory/1/forget",
            data={"csrf": token, "ns": NS},
            headers={"origin": "http://evil.example"},
        )
        wrong_ns = c.post(f"{ui}/ui/memory/1/forget", data={"csrf": token, "ns": "other"})
    assert (stale.status_code, foreign.status_code, wrong_ns.status_code) == (403, 403, 400)
    memory = open_memory(db, embedder=real_model)
    try:
        assert memory.get(1) is not None
    finally:
        memory.close()


def test_export_is_the_namespace_as_json_lines(ui: str, db: Path, real_model):
    with client() as c:
        r = c.get(f"{ui}/ui/export", params={"ns": NS})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="memrl-github.com_acme_ui.jsonl"'
    memory = open_memory(db, embedder=real_model)
    try:
        assert r.text.splitlines() == list(export_lines(memory, NS))
    finally:
        memory.close()
    assert [json.loads(line)["namespace"] for line in r.text.splitlines()] == [NS] * 3


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("/ui/memories", {"ns": "bad ns"}, "namespace &#39;bad ns&#39; is invalid"),
        ("/ui/memories", {"ns": NS, "after": "x"}, "after must look like VALUE:ID"),
        ("/ui/memories", {"ns": NS, "kind": "idea"}, "kind &#39;idea&#39; is invalid"),
        ("/ui/memories", {"ns": NS, "q_min": "lots"}, "q_min must be a number"),
        ("/ui/ledger", {"ns": NS, "outcome": "won"}, "outcome &#39;won&#39; is invalid"),
        ("/ui/learning", {"ns": NS, "window": "0"}, "window must be an integer in 1..10000"),
        ("/ui/recall", {"ns": NS, "task": "x", "k": "99"}, "k must be in 1..20"),
    ],
)
def test_bad_input_is_a_400_that_says_what_to_fix(ui: str, path, params, message):
    with client() as c:
        r = c.get(ui + path, params=params)
    assert r.status_code == 400 and message in r.text


def test_an_unknown_memory_is_a_404(ui: str):
    with client() as c:
        assert c.get(f"{ui}/ui/memory/999").status_code == 404


def test_ui_off_loopback_needs_a_token(tmp_path: Path, capsys):
    from memrl_server.cli import main

    assert main(["ui", "--db", str(tmp_path / "m.db"), "--host", "0.0.0.0"]) == 2
    assert "set a bearer token with --token or MEMRL_HTTP_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()  # refused before anything opened


@pytest.fixture(scope="module")
def served(db: Path) -> Iterator[str]:
    """`memrl serve --http --token`: the MCP endpoint and the page in one process."""
    port = free_port()
    proc = start_http_server(db, port, "--namespace", NS, "--token", TOKEN)
    wait_ready(proc, f"http://127.0.0.1:{port}/ui/static/style.css")
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def test_serve_http_mounts_the_page_behind_its_token(served: str):
    with client() as c:
        anonymous = c.get(f"{served}/ui/memories", params={"ns": NS})
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/ui/login?next=/ui/memories"
        header = c.get(f"{served}/ui/memories", params={"ns": NS}, headers={"authorization": f"Bearer {TOKEN}"})
        assert header.status_code == 200 and "deploy the service to stage 0" in header.text
        assert c.post(f"{served}/mcp", json={}).status_code == 401  # the MCP endpoint keeps its guard

    with client() as browser_like:
        form = browser_like.get(f"{served}/ui/login", params={"next": "/ui/ledger?ns=" + NS})
        token = csrf_of(form.text)
        wrong = browser_like.post(f"{served}/ui/login", data={"csrf": token, "token": "nope"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text
        ok = browser_like.post(
            f"{served}/ui/login", params={"next": "/ui/ledger?ns=" + NS}, data={"csrf": token, "token": TOKEN}
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/ledger?ns=" + NS
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert browser_like.get(f"{served}/ui/ledger", params={"ns": NS}).status_code == 200
        assert browser_like.post(f"{served}/mcp", json={}).status_code == 401  # the cookie is not the token


def test_login_never_redirects_off_the_page(served: str):
    with client() as c:
        form = c.get(f"{served}/ui/login", params={"next": "https://evil.example/"})
        ok = c.post(
            f"{served}/ui/login",
            params={"next": "//evil.example/ui/"},
            data={"csrf": csrf_of(form.text), "token": TOKEN},
        )
    assert ok.headers["location"] == "/ui/"


def test_the_page_reads_postgres(tmp_path: Path, real_model):
    """`memrl ui --db postgresql://...`: every view answers from the team database."""
    pg = Backend("postgres", tmp_path)
    proc = None
    try:
        memory = open_memory(pg.target, embedder=real_model)
        ids = [
            memory.store_experience(f"deploy the service to stage {i}", f"step {i}: make deploy", namespace=NS).id
            for i in range(3)
        ]
        task = memory.recall("deploy the service", NS)
        [used] = [m.id for m in task.injected][:1]
        memory.report(task.task_id or "", success=True, used_ids=[used])
        memory.close()
        proc, port = start_ui(pg.target, NS)  # type: ignore[arg-type]
        ui = f"http://127.0.0.1:{port}"
        with client() as c:
            listed = c.get(f"{ui}/ui/memories", params={"ns": NS})
            ascending = c.get(f"{ui}/ui/memories", params={"ns": NS, "sort": "q", "order": "asc"})
            one = c.get(f"{ui}/ui/memory/{used}")
            ledger = c.get(f"{ui}/ui/ledger", params={"ns": NS})
            pages = [c.get(f"{ui}/ui/{view}", params={"ns": NS}) for view in ("learning", "namespaces")]
        assert [r.status_code for r in (listed, ascending, one, ledger, *pages)] == [200] * 6
        order = [int(i) for i in re.findall(r'<tr class="memory" data-id="(\d+)"', listed.text)]
        assert order[0] == used and sorted(order) == ids  # Q 0.3 first, then the others by id
        assert order[1:] == sorted(set(ids) - {used}, reverse=True)
        assert f'data-id="{used}" data-q="0.300000"' in listed.text
        assert all(f"deploy the service to stage {i}" in listed.text for i in range(3))
        assert re.findall(r'<tr class="memory" data-id="(\d+)"', ascending.text)[-1] == str(used)
        assert "deploy the service to stage" in one.text and "+0.300" in one.text  # Q after
        assert task.task_id in ledger.text and "deploy the service" in ledger.text
        assert NS in pages[1].text
    finally:
        if proc is not None:
            stop(proc)
        pg.close()


def test_an_archived_memory_shows_why_and_how_to_restore(tmp_path: Path, real_model):
    path = tmp_path / "archived.db"
    memory = open_memory(path, embedder=real_model)
    try:
        old = memory.store_experience("run the tests", "python -m unittest", namespace=NS).id
        fix = memory.store_experience(
            "run the tests", "pytest -x -q", namespace=NS, supersedes=[old]
        ).id
    finally:
        memory.close()
    proc, port = start_ui(path, NS)
    try:
        with client() as c:
            page = c.get(f"http://127.0.0.1:{port}/ui/memory/{old}")
            namespaces = c.get(f"http://127.0.0.1:{port}/ui/namespaces")
    finally:
        stop(proc)
    assert page.status_code == 200, page.text
    assert 'id="archived"' in page.text and "superseded by <a" in page.text
    assert f"memory {fix}</a>" in page.text and f"memrl restore {old}" in page.text
    assert "python -m unittest" in page.text
    assert namespaces.status_code == 200 and ">archived</th>" in namespaces.text
