"""The Claude Code plugin in plugin/: manifests in the layout Claude Code loads (checked
against real plugins: anthropics/claude-code plugins/*, thedotmack/claude-mem plugin/),
hooks that reach `memrl hook` for exactly the events it handles, and the settings.json
snippet identical to the plugin's hooks."""

from __future__ import annotations

import json
import re
from pathlib import Path

from memrl_server.hooks.events import HANDLERS

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def commands(hooks: dict) -> list[tuple[str, str | None, str]]:
    return [
        (event, group.get("matcher"), hook["command"])
        for event, groups in hooks.items()
        for group in groups
        for hook in group["hooks"]
    ]


def test_manifest_and_marketplace():
    manifest = load(PLUGIN / ".claude-plugin" / "plugin.json")
    assert manifest["name"] == "memrl" and manifest["description"]
    market = load(ROOT / ".claude-plugin" / "marketplace.json")
    entry = next(p for p in market["plugins"] if p["name"] == "memrl")
    assert (ROOT / entry["source"]).resolve() == PLUGIN
    server = load(PLUGIN / ".mcp.json")["mcpServers"]["memrl"]
    assert server == {"command": "memrl", "args": ["serve"]}


def test_every_hook_runs_memrl_hook_on_an_event_it_handles():
    hooks = load(PLUGIN / "hooks" / "hooks.json")["hooks"]
    assert set(hooks) == set(HANDLERS)
    for event, _, command in commands(hooks):
        assert command == "memrl hook", event
    for group in hooks["UserPromptSubmit"] + hooks["Stop"] + hooks["SessionEnd"]:
        assert "matcher" not in group  # these events take no matcher
        assert all(h["timeout"] >= 30 for h in group["hooks"])  # room for a cold daemon


def test_tool_matchers_catch_bash_and_the_models_recall():
    hooks = load(PLUGIN / "hooks" / "hooks.json")["hooks"]
    tool_matcher = re.compile(f"^(?:{hooks['PostToolUse'][0]['matcher']})$")
    for name in (
        "Bash",
        "mcp__memrl__recall_experience",
        "mcp__plugin_memrl_memrl__recall_experience",
    ):
        assert tool_matcher.match(name), name
    for name in ("Read", "Edit", "mcp__memrl__report_outcome"):
        assert not tool_matcher.match(name), name
    assert hooks["PostToolUseFailure"][0]["matcher"] == "Bash"


def test_the_settings_snippet_is_the_plugins_hooks():
    plugin_hooks = load(PLUGIN / "hooks" / "hooks.json")["hooks"]
    assert load(PLUGIN / "settings-hooks.json")["hooks"] == plugin_hooks


def test_the_codex_hooks_use_the_codex_dialect():
    hooks = load(PLUGIN / "codex-hooks.json")["hooks"]
    assert set(hooks) <= set(HANDLERS)
    assert "PostToolUseFailure" not in hooks  # Codex never fires it
    for _, _, command in commands(hooks):
        assert command == "memrl hook --host codex"
