"""Settings for the whole test session.

One intra-op thread for torch (OpenMP, MKL, oneDNN) in the tests and in every
process they start, unless the environment says otherwise. The tests run small
tensors, where a second thread gains little; and on a busy machine (a CI runner,
a benchmark, another suite) every parallel region waits at OpenMP's barrier for
a thread the OS has descheduled: with two threads on a loaded two-core machine
the suite took four times as long. Set here, before anything imports torch.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
