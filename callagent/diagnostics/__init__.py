"""Finding out whether callagent can run here: CPU levels, the engine self-check, the doctor.

Nothing here is imported by a call; ``callagent doctor``, ``make run`` and ``callagent serve``'s
start-up use it (docs/install.md).
"""
