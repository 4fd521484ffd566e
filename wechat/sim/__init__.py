"""An offline stand-in for WeChat's servers (official account + mini-program).

It serves WeChat's server APIs with their quirks and error codes, records every call, injects
faults on demand, and plays WeChat's side of the callback protocol. It imports nothing from the
backend: it is the independent party the backend is tested against.
"""

from .app import create_sim_app
from .config import SimConfig, SimLimits
from .sender import CallbackSender, SendResult, VerifyResult
from .server import SimServer
from .state import SimState

__all__ = [
    "CallbackSender",
    "SendResult",
    "SimConfig",
    "SimLimits",
    "SimServer",
    "SimState",
    "VerifyResult",
    "create_sim_app",
]
