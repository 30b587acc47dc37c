"""How the command was started, where that changes what it must say: under torchrun with restarts.

torchrun (``--max-restarts N``) starts the worker group again after a worker fails; with
``--ckpt_path last`` the new group resumes the run. By default PyTorch's workers share the agent's
rendezvous store, which keeps the addresses the previous group published, and a restarted gloo group
may try to connect to them and fail ("Gloo connectFullMesh failed ... Connection refused").
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` in torchrun's environment gives every attempt a store of its
own; the environment variables below are those torchrun gives each worker.
"""

import os


def torchrun_restart_warning() -> str | None:
    """A line to print when this worker's group can be restarted but would share a stale store."""
    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) < 1:
        return None
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    return (
        "warning: torchrun --max-restarts: a restarted worker group may fail to connect (PyTorch's shared"
        " rendezvous store keeps the previous group's addresses); start torchrun with"
        " TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment"
    )
