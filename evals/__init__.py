"""Lantern's evaluations: the Cloud-OpsBench replay harness (`lantern eval cloudops`) and sessions
exported as replay cases (`lantern eval export`).

Not part of the product (the wheel ships engine, skills, sandbox, console and themes only): the
harness drives the real engine, so it sits beside it and imports it, never the other way round.
"""
