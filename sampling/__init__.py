"""Sampling-side pieces, one concern per subpackage: context windows (:mod:`.windows`), what sampling starts from and
the noise schedules (:mod:`.noise`), per-frame prompt and number schedules (:mod:`.prompts`).

Nothing here knows motion modules: a motion module is put into a model by :mod:`..animate`.
"""
