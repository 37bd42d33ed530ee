"""The delivery tests' database: a migrated engine on the test database URL."""

import pytest

from service.db.engine import make_engine
from service.db.migrate import upgrade


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
