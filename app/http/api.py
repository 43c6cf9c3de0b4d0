"""Mounts every domain router under /api/v1."""

from fastapi import APIRouter, Depends

from app.activities.router import router as activities_router
from app.alerts.router import alerts_router, rules_router
from app.audit import service as audit_service
from app.audit.router import router as audit_router
from app.auth.router import router as auth_router
from app.deals.router import router as deals_router
from app.http import caching, params
from app.http.deps import CurrentKey, SessionDep
from app.performance.router import router as performance_router
from app.pipeline.imports.router import router as imports_router
from app.pipeline.jobs.router import router as jobs_router
from app.reps.router import router as reps_router
from app.sources.router import router as sources_router
from app.targets.router import router as targets_router
from app.teams.router import router as teams_router
from app.webhooks.router import router as webhooks_router


async def record_actor(session: SessionDep, principal: CurrentKey) -> None:
    """Router dependency: changes made in this request are logged as this key's (the audit
    log, :mod:`app.audit.service`). Async: no I/O here, so no thread-pool hop."""
    audit_service.bind_actor(session, principal)


# For every route, in order, after the app's own check of unknown query parameters
# (app.http.main): the key, checked and charged to its rate limit (app.http.deps.check_key),
# as the actor of any change (the audit log); a 404 for an id filter naming no visible record;
# for GETs, ETag/Last-Modified and a 304 when the client is current. The 304 comes last, so a
# request the route would refuse never gets one (see app.http.params).
api_router = APIRouter(
    prefix="/api/v1",
    dependencies=[
        Depends(record_actor),
        Depends(params.check_filter_ids),
        Depends(caching.conditional),
    ],
)
api_router.include_router(reps_router, prefix="/reps", tags=["reps"])
api_router.include_router(teams_router, prefix="/teams", tags=["teams"])
api_router.include_router(targets_router, prefix="/targets", tags=["targets"])
api_router.include_router(deals_router, prefix="/deals", tags=["records"])
api_router.include_router(activities_router, prefix="/activities", tags=["records"])
api_router.include_router(sources_router, prefix="/sources", tags=["sources"])
api_router.include_router(jobs_router, prefix="/jobs", tags=["jobs"])
api_router.include_router(imports_router, prefix="/imports", tags=["imports"])
api_router.include_router(performance_router)
api_router.include_router(rules_router, prefix="/alert-rules", tags=["alerts"])
api_router.include_router(alerts_router, prefix="/alerts", tags=["alerts"])
api_router.include_router(webhooks_router, prefix="/webhooks", tags=["webhooks"])
api_router.include_router(auth_router, prefix="/api-keys", tags=["api keys"])
api_router.include_router(audit_router, prefix="/audit", tags=["audit"])
