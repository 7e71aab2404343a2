"""Controllers of the REST API, one module per domain. They only translate HTTP to service
calls: every rule lives in ``callagent.store.services`` (DESIGN.md practice 10)."""
