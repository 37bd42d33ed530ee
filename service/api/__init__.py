"""The HTTP edge: app factory, routes per resource, schemas, dependencies, errors, middleware."""
