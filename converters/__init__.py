"""Model -> NIR -> Lava: export (with BatchNorm and fusion gains folded), the reference NIR executor, the one
discretisation every simulator shares, static fusion gains for a deployment condition, and the Lava builder /
fixed-point quantiser.

Lava itself is imported only inside the functions that need it (see docs/architecture.md).
"""

from .fusion_gain import FusionGains, calibrate_gains, power_of_two_search
from .model_to_nir import export_model, write_graph
from .nir_executor import GraphRun, run_graph
from .nir_semantics import DiscreteNeuron, discretize, graph_dt, graph_metadata

__all__ = ["FusionGains", "calibrate_gains", "power_of_two_search", "export_model", "write_graph", "GraphRun",
           "run_graph", "DiscreteNeuron", "discretize", "graph_dt", "graph_metadata"]
