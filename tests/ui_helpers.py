"""Shared pieces of the inspection page's tests: a real `memrl ui` process, a real browser.

The browser is Debian's headless Chromium driven by Selenium through Debian's
chromedriver (`apt-get install chromium chromium-driver`). Without them the browser tests
are skipped, unless MEMRL_REQUIRE_BROWSER=1 (CI sets it) turns that into a failure.
Chromium gets the flags that keep it off the network: its background services would
otherwise try to reach Google at every start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mcp_helpers import free_port, server_env

CHROMIUM = os.environ.get("MEMRL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MEMRL_CHROMEDRIVER", "/usr/bin/chromedriver")
OFFLINE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
)


def need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} not found: apt-get install -y chromium chromium-driver"
    if os.environ.get("MEMRL_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def start_browser(width: int = 1280, height: int = 900) -> Any:
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*OFFLINE_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='memrl-chromium-')}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def start_ui(db: Path, namespace: str, *extra: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """`memrl ui` on `db`, ready (model loaded) when this returns."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memrl_server", "ui", "--db", str(db), "--namespace", namespace,
         "--port", str(port), *extra],
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_ready(proc, f"http://127.0.0.1:{port}/ui/static/style.css")
    return proc, port


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stderr:
        proc.stderr.close()


def shot(driver: Any, folder: Path, name: str) -> Path:
    """A screenshot of the page in the test's folder; with MEMRL_UI_SHOTS=DIR also a small
    palette PNG there (how docs/ui/*.png are made)."""
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    extra = os.environ.get("MEMRL_UI_SHOTS")
    if extra:
        from PIL import Image

        Path(extra).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=64)
            small.save(Path(extra) / f"{name}.png", optimize=True)
    return path
