"""``python -m collector`` with the fault injector on, for tests that plant faults in a CLI process.

A normal ``python -m collector`` ignores ``DECODE_REGIMES_FAULTS``; this script
(run as ``python tests/collector_with_faults.py run ...``) first calls
:func:`collector.sweep.worker.enable_fault_injection`, the only switch there is.
"""

from __future__ import annotations

import sys

from collector.__main__ import main
from collector.sweep import worker

if __name__ == "__main__":
    worker.enable_fault_injection()
    sys.exit(main(sys.argv[1:]))
