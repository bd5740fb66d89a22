"""Operations: the audit consumer, dead letters, metrics, Flower, the report, the CLI, the demo.

May import ``mediaapp.jobs``, ``mediaapp.media`` and the shared modules; nothing imports it
but the ``mediaapp`` command.
"""
