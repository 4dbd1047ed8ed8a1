"""The inspection page in a real browser: headless Chromium (Selenium) against a real
`memrl ui` process on a real database that the real model filled (tests/ui_data.py).

What the page shows is checked against `Memory`'s own answers on the same file. Each test
writes a screenshot of its view into its tmp_path (and into MEMRL_UI_SHOTS when set).
The tests run in file order: the last one forgets a memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait
from ui_data import HOSTILE, NAMESPACE, fill
from ui_helpers import need_browser, shot, start_browser, start_ui, stop

from memrl import Memory, open_memory

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, real_model: Any) -> Iterator[tuple[Memory, Any]]:
    """The database and a Memory on it, to compare the page with."""
    need_browser()
    db = tmp_path_factory.mktemp("ui") / "memrl.db"
    memory = open_memory(db, embedder=real_model)
    history = fill(memory)
    yield memory, history
    memory.close()


@pytest.fixture(scope="module")
def base(filled: tuple[Memory, Any]) -> Iterator[str]:
    memory, _ = filled
    proc, port = start_ui(Path(memory.storage.target), NAMESPACE)
    yield f"http://127.0.0.1:{port}/ui"
    stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = start_browser()
    yield driver
    driver.quit()


def wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    return WebDriverWait(driver, timeout).until(condition)


def ids(elements: list[Any], attribute: str = "data-id") -> list[int]:
    return [int(e.get_attribute(attribute)) for e in elements]


def test_memories_render_with_their_q_and_sort(filled, base, browser, tmp_path):
    memory, _ = filled
    browser.get(base + "/")  # opens on the namespace given to `memrl ui`
    wait(browser, ec.presence_of_element_located((By.ID, "memories")))
    assert browser.current_url.startswith(base + "/memories?ns=github.com%2Facme%2Fshop")
    expected = memory.memories_page(NAMESPACE, limit=500).rows
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.memory")
    assert ids(rows) == [r.memory.id for r in expected]
    for row, listed in zip(rows, expected):
        q_cell = row.find_element(By.CSS_SELECTOR, "td.q").text
        assert q_cell == f"{listed.memory.q:+.3f} ± {listed.memory.q_sd:.2f}"
        cells = row.find_elements(By.CSS_SELECTOR, "td.n")
        assert cells[2].text == str(listed.usage.injected)  # id, Q, injected, updates, ...
        assert cells[3].text == str(listed.memory.n_updates)
    qs = [float(r.get_attribute("data-q")) for r in rows]
    assert qs == sorted(qs, reverse=True) and qs[0] > 0.5 > qs[-1]
    assert browser.find_element(By.ID, "total").text == f"{len(expected)} memories"
    assert browser.find_elements(By.CSS_SELECTOR, "svg.spark")  # Q over time
    shot(browser, tmp_path, "memories")

    browser.find_element(By.ID, "sort-q").click()  # again: ascending
    wait(browser, ec.url_contains("order=asc"))
    qs = [float(r.get_attribute("data-q")) for r in browser.find_elements(By.CSS_SELECTOR, "tr.memory")]
    assert qs == sorted(qs)
    browser.find_element(By.ID, "sort-id").click()
    wait(browser, ec.url_contains("sort=id"))
    shown = ids(browser.find_elements(By.CSS_SELECTOR, "tr.memory"))
    assert shown == sorted(shown, reverse=True)


def test_filters_narrow_the_list(filled, base, browser):
    memory, _ = filled
    browser.get(base + f"/memories?ns={NAMESPACE}")
    Select(browser.find_element(By.NAME, "kind")).select_by_value("failure")
    browser.find_element(By.NAME, "q_max").send_keys("0")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait(browser, ec.url_contains("kind=failure"))
    expected = memory.memories_page(NAMESPACE, kind="failure", q_max=0.0).rows
    assert expected and ids(browser.find_elements(By.CSS_SELECTOR, "tr.memory")) == [
        r.memory.id for r in expected
    ]


def test_a_memory_written_as_html_renders_as_text(filled, base, browser, tmp_path):
    _, history = filled
    browser.get(base + f"/memory/{history.hostile_id}")
    assert browser.find_element(By.ID, "experience").text == HOSTILE
    assert browser.title == f"Memory {history.hostile_id} · memrl"  # the script never ran
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main b") == []
    browser.get(base + f"/memories?ns={NAMESPACE}&text=%3Cscript%3E")
    [row] = browser.find_elements(By.CSS_SELECTOR, "tr.memory")
    assert "<script>" in row.find_element(By.CSS_SELECTOR, "summary").text
    assert browser.title.startswith("Memories of")
    shot(browser, tmp_path, "hostile")


def test_a_memory_shows_every_task_that_had_it_in_its_pool(filled, base, browser, tmp_path):
    memory, history = filled
    best = max(history.helpful, key=lambda i: memory.get(i).q)
    browser.get(base + f"/memory/{best}")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.appearance")
    expected = memory.memory_history(best).appearances
    assert len(rows) == len(expected) > 3
    last_credited = next(a for a in expected if a.credited)
    cell = rows[expected.index(last_credited)].find_elements(By.CSS_SELECTOR, "td.n")[-1]
    assert cell.text == f"{last_credited.q_after:+.3f}"  # Q after it
    assert browser.find_element(By.ID, "q").text == f"{memory.get(best).q:+.3f}"
    shot(browser, tmp_path, "memory")


def test_a_ledger_row_shows_its_pool(filled, base, browser, tmp_path):
    memory, _ = filled
    browser.get(base + f"/ledger?ns={NAMESPACE}")
    expected = memory.ledger_page(NAMESPACE).tasks
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.task")
    assert [r.get_attribute("data-task") for r in rows] == [t.task_id for t in expected]
    index = next(i for i, t in enumerate(expected) if len(t.pool) > 1)
    row, task = rows[index], expected[index]
    candidates = row.find_elements(By.CSS_SELECTOR, "tr.candidate")
    assert not candidates[0].is_displayed()  # folded until asked for
    row.find_element(By.CSS_SELECTOR, "details.pool summary").click()
    wait(browser, lambda _: candidates[0].is_displayed())
    assert ids(candidates, "data-memory") == [c.memory_id for c in task.pool]
    for element, c in zip(candidates, task.pool):
        cells = [e.text for e in element.find_elements(By.CSS_SELECTOR, "td.n")]
        assert cells[1:4] == [f"{c.similarity:.3f}", f"{c.q:+.3f}", f"{c.score:+.2f}"]
        assert ("injected" in element.get_attribute("class")) == c.injected
    shot(browser, tmp_path, "ledger")

    Select(browser.find_element(By.NAME, "gate")).select_by_value("empty")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait(browser, ec.url_contains("gate=empty"))
    alone = memory.ledger_page(NAMESPACE, empty_pool=True).tasks
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.task")
    assert len(rows) == len(alone) > 0
    assert all(r.find_elements(By.CSS_SELECTOR, ".gate-empty") for r in rows)


def test_a_dry_run_recall_ranks_as_recall_does_and_writes_no_ledger_row(filled, base, browser, tmp_path):
    memory, _ = filled
    task = "the async queue test is flaky because of a race"
    tasks_before = memory.stats(NAMESPACE)[0]["tasks"]
    newest_before = memory.ledger_page(NAMESPACE, limit=1).tasks[0].task_id
    browser.get(base + f"/recall?ns={NAMESPACE}")
    browser.find_element(By.NAME, "task").send_keys(task)
    browser.find_element(By.ID, "recall-submit").click()
    wait(browser, ec.presence_of_element_located((By.ID, "phase-b")))
    expected = memory.recall(task, NAMESPACE, dry_run=True)
    rows = browser.find_elements(By.CSS_SELECTOR, "#phase-b tr.candidate")
    assert ids(rows, "data-memory") == [c.id for c in expected.candidates]
    injected = [int(r.get_attribute("data-memory")) for r in rows if "injected" in r.get_attribute("class")]
    assert injected == [c.id for c in expected.injected]
    phase_a = browser.find_elements(By.CSS_SELECTOR, "#phase-a tbody tr")
    assert [r.find_elements(By.CSS_SELECTOR, "td.n")[1].text for r in phase_a] == [
        f"{sim:.3f}" for _, sim in expected.intents
    ]
    assert "nothing was recorded" in browser.find_element(By.ID, "recall-message").text
    shot(browser, tmp_path, "recall")
    assert memory.stats(NAMESPACE)[0]["tasks"] == tasks_before
    assert memory.ledger_page(NAMESPACE, limit=1).tasks[0].task_id == newest_before


def test_the_learning_plot_has_its_points(filled, base, browser, tmp_path):
    memory, _ = filled
    browser.get(base + f"/learning?ns={NAMESPACE}")
    curve = memory.learning_curve(NAMESPACE, window=20)
    series = {"all": "success", "with": "with_memories", "without": "without_memories", "gate": "gate_empty"}
    for css, attr in series.items():
        points = browser.find_elements(By.CSS_SELECTOR, f"#learning-plot circle.pt[data-series={css}]")
        values = [(p.task, getattr(p, attr)) for p in curve.points if getattr(p, attr) is not None]
        assert len(points) == len(values) > 0, css
        got = [(int(e.get_attribute("data-task")), float(e.get_attribute("data-value"))) for e in points]
        assert got == [(t, pytest.approx(v, abs=1e-4)) for t, v in values]
    assert curve.points[-1].with_memories > curve.points[0].success  # it learned
    shot(browser, tmp_path, "learning")


def test_namespaces_list_their_figures(filled, base, browser, tmp_path):
    memory, _ = filled
    browser.get(base + "/namespaces")
    [stats] = memory.stats(NAMESPACE)
    [row] = browser.find_elements(By.CSS_SELECTOR, "#namespaces tbody tr")
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "td.n")]
    assert cells[:4] == [str(stats[k]) for k in ("memories", "intents", "tasks", "tasks_reported")]
    assert cells[4] == f"{stats['success_rate']:.0%}"
    shot(browser, tmp_path, "namespaces")


def test_forget_asks_first_then_removes(filled, base, browser, tmp_path):
    memory, history = filled
    victim = min(r.memory.id for r in memory.memories_page(NAMESPACE, kind="failure").rows)
    appearances = len(memory.memory_history(victim).appearances)
    browser.get(base + f"/memory/{victim}")
    browser.find_element(By.ID, "forget").click()
    wait(browser, ec.presence_of_element_located((By.ID, "confirm")))
    assert memory.get(victim) is not None  # asked, nothing removed yet
    shot(browser, tmp_path, "forget")
    browser.find_element(By.ID, "cancel").click()
    wait(browser, ec.presence_of_element_located((By.ID, "forget")))
    assert memory.get(victim) is not None
    browser.find_element(By.ID, "forget").click()
    wait(browser, ec.presence_of_element_located((By.ID, "confirm"))).click()
    notice = wait(browser, ec.presence_of_element_located((By.ID, "forgotten")))
    assert f"Memory {victim} was forgotten" in notice.text
    assert memory.get(victim) is None
    assert victim not in ids(browser.find_elements(By.CSS_SELECTOR, "tr.memory"))
    browser.get(base + f"/memory/{victim}")  # the ledger keeps its history
    assert browser.find_element(By.ID, "gone")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.appearance")) == appearances > 0
