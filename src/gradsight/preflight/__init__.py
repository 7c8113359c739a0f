"""``gradsight check``: the checks an expert runs before training, automated and explained.

Each check measures one thing about the data, the model at initialisation or a few
training steps on copies, and returns a :class:`Check` with a status (``pass``, ``warn``,
``fail``), the measured value, what it means, and the fix.
"""

from gradsight.preflight.config import CheckConfig
from gradsight.preflight.result import STATUSES, Check, CheckReport
from gradsight.preflight.run import check, check_prepared, run_checks

__all__ = [
    "STATUSES",
    "Check",
    "CheckConfig",
    "CheckReport",
    "check",
    "check_prepared",
    "run_checks",
]
