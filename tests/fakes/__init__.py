"""Test doubles of the peers callagent talks to (DESIGN.md practice 8).

Each fake copies what the real peer was seen to do and says where that knowledge comes from;
nothing here ships in the ``callagent`` package. The tests directory is on ``pythonpath``
(``pyproject.toml``), so these import as ``fakes.<module>``.
"""
