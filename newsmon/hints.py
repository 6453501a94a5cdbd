"""Commands named in hints (`run ... next`), written so that they work when typed as printed.

`make demo` installs into .venv without activating it, so a bare `newsmon ...` in a hint would be "command not
found" there. A hint names newsmon (or prefect, pip) by the path of the running installation's script unless
PATH already finds that same script (an activated environment, a global install): `.venv/bin/newsmon ...`
from the checkout, an absolute path from anywhere else.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def command(name: str = "newsmon") -> str:
    """`name` as the user can type it in the current folder: the bare name when PATH finds this installation's
    script, else that script's path (relative when it is under the working folder), shell-quoted."""
    script = _script(name)
    if script is None:
        return name
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(script):
        return name
    here = os.getcwd()
    shown = os.path.relpath(script, here) if script.startswith(here.rstrip(os.sep) + os.sep) else script
    return shlex.quote(shown)


def _script(name: str) -> str | None:
    """The script `name` beside the running newsmon: in the folder of the `newsmon` script that was run, else
    beside the Python running it (`python -m newsmon.cli`); None when there is no such file."""
    argv0 = sys.argv[0] if sys.argv else ""
    folder = (os.path.dirname(os.path.abspath(argv0)) if os.path.basename(argv0) == "newsmon"
              else os.path.dirname(os.path.abspath(sys.executable)))
    script = os.path.join(folder, name)
    return script if os.path.isfile(script) and os.access(script, os.X_OK) else None


def quoted(path: object) -> str:
    """A path (or any argument) as a hint shows it: shell-quoted when it needs to be."""
    return shlex.quote(str(path))
