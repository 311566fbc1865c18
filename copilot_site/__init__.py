"""The site that assembles the domains: settings (every environment variable is read here), URLs, ASGI routing,
and `manage.py serve`. It may import every package; none imports it."""
