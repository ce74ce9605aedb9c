"""Run a command from a small process and write its peak RSS (KiB) to a file: ``small_parent.py RSS_FILE CMD...``.

Tests that bound a command's memory start it through this script.  On Linux a child's peak RSS
also counts the process it was spawned from (vfork shares memory until exec), and by then the
pytest process may hold TensorFlow: hundreds of MB that are not the command's.
"""

import os
import subprocess
import sys

process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
