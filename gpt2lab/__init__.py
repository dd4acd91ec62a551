"""gpt2lab: the package behind a step-through course on how GPT-2 works."""
from .device import pick_device, pick_dtype
from .loading import LM, ModelNotFoundError, embedded_models, from_model, hub_reachable, load, load_default

__version__ = "0.1.0"
__all__ = ["LM", "ModelNotFoundError", "embedded_models", "from_model", "hub_reachable", "load", "load_default",
           "pick_device", "pick_dtype"]
