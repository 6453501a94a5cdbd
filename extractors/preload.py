"""Imported once by the extraction pool's forkserver, before it forks any worker.

Every worker is a fork of that process, so what is loaded here (trafilatura, lxml, the language model) is
loaded once and shared copy-on-write instead of once per worker and per pool (the model alone took ~0.6 s of
CPU per worker). ``gc.freeze`` keeps the collector from touching (and so copying) those shared objects.
"""

from __future__ import annotations

import gc

from extractors.worker import warm_up

warm_up()
gc.freeze()
