"""Is this machine ready for gradsight? Gather facts, then diagnose them with concrete fixes.

>>> from gradsight.doctor import diagnose, gather
>>> facts = gather()
>>> facts.torch.cuda_usable in (True, False) and facts.host.python.count(".") == 2
True
>>> all(d.severity in ("error", "warning", "info") for d in diagnose(facts))
True
"""

from gradsight.doctor.diagnose import CODES, Diagnosis, diagnose, has_errors
from gradsight.doctor.facts import Facts, Gpu, HostFacts, NvidiaFacts, TorchFacts
from gradsight.doctor.probes import CommandResult, Probes, gather

__all__ = [
    "CODES",
    "CommandResult",
    "Diagnosis",
    "Facts",
    "Gpu",
    "HostFacts",
    "NvidiaFacts",
    "Probes",
    "TorchFacts",
    "diagnose",
    "gather",
    "has_errors",
]
