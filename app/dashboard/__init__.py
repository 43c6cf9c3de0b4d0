"""The built-in dashboard page: server-rendered HTML over the same service calls as the API."""
