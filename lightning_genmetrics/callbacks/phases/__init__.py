"""The phases of an evaluation, each with one ``run(context, ...) -> PhaseResult``, sharing one scope."""
