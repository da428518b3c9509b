from tests.channels.emulator import line_emulator  # noqa: F401
