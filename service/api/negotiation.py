"""`Accept` header → result format ("csv" or "json") for endpoints that serve both."""

from __future__ import annotations

from service.api.errors import ApiError

_MEDIA = {"text/csv": "csv", "application/json": "json", "text/*": "csv",
          "application/*": "json", "*/*": "csv"}


def negotiate(accept: str | None, default: str = "csv") -> str:
    """The format the client prefers most (highest q, then header order); no header: `default`.

    An `Accept` that names neither CSV nor JSON (nor a wildcard over them) is a 406.
    """
    if not accept or not accept.strip():
        return default
    ranked: list[tuple[float, int, str]] = []
    for order, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        fmt = _MEDIA.get(media.lower())
        if fmt is not None and q > 0:
            ranked.append((-q, order, fmt))
    if not ranked:
        raise ApiError(406, "not_acceptable", f"Accept {accept!r}: this resource is served as "
                       "text/csv or application/json (or use ?format=csv|json)", "header.accept")
    return min(ranked)[2]
