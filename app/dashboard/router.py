"""The dashboard's pages: /dashboard, its login and logout.

A viewer logs in with an API key through a form. The key goes into an HttpOnly, SameSite=Strict
cookie scoped to /dashboard (Secure over https), never into a URL, and is checked again on every
request, so a revoked or expired key logs the page out. The POSTs only accept a same-origin
Origin (or Referer) header, which a cross-site form cannot forge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.auth import service as auth_service
from app.auth.service import Principal
from app.core.exceptions import AuthenticationError, InvalidInputError
from app.dashboard import formatting
from app.dashboard import service as dashboard_service
from app.http.deps import SessionDep, SettingsDep

HERE = Path(__file__).parent
COOKIE = "qg_dashboard"
COOKIE_PATH = "/dashboard"
# Relative: right behind a proxy too, and never carrying anything but the path.
DASHBOARD_URL = "/dashboard"
LOGIN_URL = "/dashboard/login"
COOKIE_MAX_AGE = 12 * 3600
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
# Everything the page loads comes from this origin; no inline scripts or styles, no frames.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(formatting.FILTERS)

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    _harden(response)
    return response


def _harden(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    _harden(response)
    return response


def _same_origin(request: Request) -> bool:
    """True when the form was posted from a page of this site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == request.headers.get("host")


def _principal(request: Request, session: SessionDep) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        key = auth_service.authenticate(session=session, token=token)
    except AuthenticationError:
        return None
    return auth_service.principal_for(session=session, key=key)


def _clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    period: Annotated[str | None, Query(max_length=20)] = None,
    metric: Annotated[str | None, Query(max_length=50)] = None,
    tv: bool = False,
) -> Response:
    principal = _principal(request, session)
    if principal is None:
        response: Response = _redirect(LOGIN_URL)
        if request.cookies.get(COOKIE):
            _clear_cookie(response, request)  # revoked or expired: log the page out
        return response
    error = None
    try:
        data = dashboard_service.build(
            session=session, settings=settings, principal=principal, period=period, metric=metric
        )
    except InvalidInputError as exc:
        error = f"{exc.message}: showing the current period"
        data = dashboard_service.build(
            session=session, settings=settings, principal=principal, period=None, metric=metric
        )
    return _page(
        request,
        "dashboard.html",
        {
            "d": data,
            "principal": principal,
            "tv": tv,
            "error": error,
            "currency": settings.reporting_currency,
        },
    )


@router.get("/login", response_class=HTMLResponse, name="dashboard_login")
def login_form(request: Request) -> Response:
    return _page(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not _same_origin(request):
        return _page(request, "login.html", {"error": "The form must be sent from this site."}, 403)
    try:
        auth_service.authenticate(session=session, token=api_key.strip())
    except AuthenticationError as exc:
        return _page(request, "login.html", {"error": f"Not signed in: {exc.message}."}, 401)
    response = _redirect(DASHBOARD_URL)
    response.set_cookie(
        COOKIE,
        api_key.strip(),
        max_age=COOKIE_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _page(request, "login.html", {"error": "The form must be sent from this site."}, 403)
    response = _redirect(LOGIN_URL)
    _clear_cookie(response, request)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    response = FileResponse(HERE / "static" / name, media_type=STATIC[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
