"""Where lmes keeps its data on this machine: `$LMES_HOME`, else `./lmes-data/`.

The default store, the lab's hosts and the executor's leases all live under it, so one
variable moves everything a user's session owns.
"""

import os
from pathlib import Path

DEFAULT_HOME = "lmes-data"


def lmes_home() -> Path:
    return Path(os.environ.get("LMES_HOME") or DEFAULT_HOME)
