"""Imported once by the extraction pool's forkserver, before it forks any worker.

Every worker is a fork of that process, so what is loaded here (trafilatura, lxml, the language model) is
loaded once and shared copy-on-write instead of once per worker and per pool (the model alone took ~0.6 s of
CPU per worker). So is justext's stoplist, which trafilatura's fallback builds on first use from every
language (extractors.worker.share_tables). ``gc.freeze`` keeps the collector from touching (and so copying)
those shared objects, and the heap's free pages (~4 MB: the language model's full tables, dropped once
restricted) go back to the system before the image is shared.

The forkserver is started as `python -c`: the working folder ('') would come first on its import path. The pool
starts it with PYTHONSAFEPATH=1 (extractors.lifeline); should that be ignored (a parent run with -E), '' is
dropped here before anything else is imported. The forkserver also exits when the run that started it ends,
and its workers with it (extractors.lifeline), so a SIGKILLed run leaves no pool behind.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p != ""]

import gc  # noqa: E402

from extractors.lifeline import mark_forkserver  # noqa: E402
from extractors.worker import release_heap, share_tables, warm_up  # noqa: E402

mark_forkserver()
warm_up()
share_tables()
gc.freeze()
release_heap()
