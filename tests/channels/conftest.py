from tests.channels.emulator import line_emulator  # noqa: F401 - the LINE emulator fixture
from tests.web.conftest import owner_client, seeded  # noqa: F401 - a signed-in owner for the page tests
