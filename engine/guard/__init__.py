"""The untrusted boundary: arguments in (check_args), output out (Scrubber, partial flags), breakers and budgets."""

from engine.guard.args import ArgumentRefused, check_args
from engine.guard.breakers import Breakers, Budgets, classify
from engine.guard.partial import detect_partial
from engine.guard.scrub import Scrubber, default_scrubber

__all__ = [
    "ArgumentRefused",
    "Breakers",
    "Budgets",
    "Scrubber",
    "check_args",
    "classify",
    "default_scrubber",
    "detect_partial",
]
