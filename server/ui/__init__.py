"""The inspection page (`memrl ui`, and /ui of `memrl serve --http`): what the memory
learned, why it injected what it did, and how to clean it up. Server-rendered HTML and SVG
over `Memory`'s read API; no script, no build step, nothing fetched from the network."""

from .app import build_ui, standalone_app, with_ui

__all__ = ["build_ui", "standalone_app", "with_ui"]
