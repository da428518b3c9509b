"""Background work of converse: importing this module registers its huey tasks."""
