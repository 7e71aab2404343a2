"""Services: the only code that writes the store, and the owner of its rules.

Each function opens its own short session through ``Database`` (one per read or write), scopes
every query to the client it is given, and returns msgspec views, never ORM objects, so nothing
can lazy-load after the session is gone (DESIGN.md practices 10 and 11).
"""
