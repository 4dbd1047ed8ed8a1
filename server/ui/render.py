"""Templates (Jinja2, autoescaped), links and the small formatting filters of the page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from memrl import InvalidInputError
from memrl.validation import namespace as checked_namespace

from .charts import sparkline
from .guard import Csrf

TEMPLATES = Path(__file__).parent / "templates"


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def num(x: float | None, digits: int = 3, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def environment() -> jinja2.Environment:
    """Autoescape on for every template: memories are untrusted text written by agents."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, num=num, pct=pct)
    env.globals["spark"] = spark
    return env


def spark(points: list[tuple[float, float]], width: int = 120, height: int = 24) -> Markup:
    """The sparkline of a Q history [(time, Q after an outcome)]."""
    return sparkline([q for _, q in points], width, height)


class Renderer:
    def __init__(self, default_ns: str, csrf: Csrf, login: bool) -> None:
        self.env = environment()
        self.default_ns = default_ns
        self.csrf = csrf
        self.login = login  # a token guards the page: show the log-in form

    @staticmethod
    def base(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    def link(self, request: Request, path: str, **query: Any) -> str:
        """A URL of this page; empty and None query values are left out."""
        args = {k: v for k, v in query.items() if v not in (None, "")}
        return self.base(request) + path + ("?" + urlencode(args) if args else "")

    def namespace(self, request: Request) -> str:
        return checked_namespace(request.query_params.get("ns") or self.default_ns)

    def page(self, request: Request, template: str, ns: str | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            ns=ns,
            default_ns=self.default_ns,
            csrf=self.csrf.value,
            link=lambda path, **q: self.link(request, path, **q),
            params=request.query_params,
            path=request.url.path[len(self.base(request)) :],
            **ctx,
        )
        return HTMLResponse(html, status)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        try:
            ns: str | None = self.namespace(request)
        except InvalidInputError:
            ns = None
        return self.page(request, "error.html", ns, status, code=status, message=message)
