"""Background work of reach: importing this module registers its huey tasks."""
