"""Background work of channels: importing this module registers its huey tasks."""
