"""The application core: app factory, domain services and security."""
