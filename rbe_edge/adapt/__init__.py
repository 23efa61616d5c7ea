"""Few-shot adaptation: training graphs of a bundle and the Adapter that runs them."""
from rbe_edge.adapt.adapter import Adapter
from rbe_edge.adapt.errors import AdaptError
from rbe_edge.adapt.native_program import NativeUnsupportedError
from rbe_edge.adapt.training_graphs import add_training_graphs, build_training_graphs

__all__ = ["Adapter", "AdaptError", "NativeUnsupportedError", "add_training_graphs",
           "build_training_graphs"]
