"""A 404 on an id lookup is audited, so a tenant probing another tenant's ids leaves a trail.

Every not-found answer of a read route that names an id is recorded, not only those naming
another tenant's id: the work (two primary-key look-ups and one audit insert) and so the time
taken are then the same whether the id is another tenant's or nobody's, and a burst of guesses
that hit nothing is itself worth seeing. The row carries the key's fingerprint (never the key),
the client address and, for the auditor only, whose id it was. The caller gets the plain
not-found answer either way: nothing in it depends on the look-up.
"""

from __future__ import annotations

import json
import logging

from fastapi import Request

from service.api.errors import ApiError
from service.components import Components
from service.db.audit import record_audit
from service.db.owners import id_owner
from service.tenancy import Principal

log = logging.getLogger("hct.api")
_ID_CHARS = 128  # the audit's resource_id column


def audited_not_found(state: Components, request: Request, principal: Principal, *,
                      resource: str, resource_id: str, message: str, field: str) -> ApiError:
    """The 404 `ApiError` to raise for `resource_id`, once the lookup has been audited.

    The audit has its own transaction: the request's rolls back with the error. Should the
    audit alone fail, the 404 is answered all the same (as a refused key's 401 is).
    """
    client = request.client.host if request.client else None
    try:
        with state.engine.begin() as conn:
            owner = id_owner(conn, resource_id)
            detail = {"status": 404, "client": client,
                      "request": f"{request.method} {request.url.path}"[:256],
                      "owner_resource": owner[0] if owner else None,
                      "owner_tenant": owner[1] if owner else None,
                      "other_tenant": owner is not None and owner[1] != principal.tenant}
            record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                         action="not_found", resource=resource,
                         resource_id=resource_id[:_ID_CHARS], detail=json.dumps(detail))
    except Exception:  # the trail is best effort; the answer must not change with it
        log.warning("could not audit a not-found lookup (database unavailable)")
    return ApiError(404, "not_found", message, field)
