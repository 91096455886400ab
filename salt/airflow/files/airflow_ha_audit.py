# Managed by Salt (salt/airflow/webserver.sls): edits are overwritten.
"""Permission failures into Airflow's audit log (issue 26).

Airflow records what a user did (table `log`, the UI's Audit Log) and the
security manager of webserver_config.py records logins and refused logins,
but a request the auth manager refuses (HTTP 403) is recorded nowhere but
the api-server's access log. This root middleware of the api-server adds one
`log` row per 403: event `permission_denied`, `owner` the user of the
request's token (or `-` when the token names nobody), `extra` the method
and path. Never the token itself.
"""

import logging

import anyio

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)
EVENT = "permission_denied"


def _token(scope):
    """The JWT the request presented: the bearer header first, then the UI's cookie (as Airflow's get_user)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME_JWT_TOKEN and value:
            return value
    return None


async def _user_name(scope):
    token = _token(scope)
    if not token:
        return "-"
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return (await get_auth_manager().get_user_from_token(token)).get_name()
    except Exception:  # an invalid or expired token is itself refused with 403/401
        return "-"


def _write(owner, extra):
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(Log(event=EVENT, owner=owner[:500], extra=extra[:1000]))


class PermissionDeniedAudit:
    """Pure ASGI middleware: passes every request through and, after a 403, writes the audit row."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_note)
        if status.get("code") == 403:
            extra = f"{scope.get('method', '')} {scope.get('path', '')}"
            try:
                owner = await _user_name(scope)
                # the DB session is synchronous: off the event loop
                await anyio.to_thread.run_sync(_write, owner, extra)
            except Exception as exc:  # the answer is sent; a lost audit row must not break the server
                log.warning("audit log row %s (%s) not written: %s", EVENT, extra, exc)


class AirflowHaAuditPlugin(AirflowPlugin):
    name = "airflow_ha_audit"
    fastapi_root_middlewares = [{"middleware": PermissionDeniedAudit, "name": "permission-denied-audit"}]
