"""Methods by name. A method is a mixer, an objective and defaults, never a training loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from factorize.algorithms.coma import COMAConfig, COMAObjective
from factorize.algorithms.dmix import DMixObjective
from factorize.algorithms.objective import Objective, UpdateInputs
from factorize.algorithms.qtran import QTranConfig, QTranObjective
from factorize.algorithms.td import TDObjective
from factorize.algorithms.wqmix import CWQMixObjective, OWQMixObjective, WQMixConfig
from factorize.config import AlgoConfig, register_options
from factorize.errors import ConfigError

__all__ = ["ALGORITHMS", "AlgorithmSpec", "Objective", "UpdateInputs", "get_algorithm", "register_algorithm"]


@dataclass(frozen=True)
class AlgorithmSpec:
    """`defaults` are config overrides (e.g. which mixer) that the user may override in turn;
    `options` is the method's own options dataclass (`algo.<option>` keys)."""

    name: str
    description: str
    objective: type[Objective]
    defaults: dict[str, Any] = field(default_factory=dict)
    options: type[AlgoConfig] = AlgoConfig
    distributional: bool = False
    """Agents output quantiles of each action's return (`agent.n_quantiles` >= 2)."""
    policy: bool = False
    """The agent network is a policy: rollouts sample its softmax (with the annealed epsilon as a
    uniform floor) instead of acting epsilon-greedily on values."""


ALGORITHMS: dict[str, AlgorithmSpec] = {}


def register_algorithm(spec: AlgorithmSpec) -> AlgorithmSpec:
    ALGORITHMS[spec.name] = spec
    register_options("algo", spec.name, spec.options)
    return spec


register_algorithm(
    AlgorithmSpec("iql", "independent Q-learning: per-agent TD on the team reward, no mixer", TDObjective,
                  {"mixer.name": "none"})
)
register_algorithm(
    AlgorithmSpec("vdn", "value decomposition networks: Q_tot = sum of utilities", TDObjective,
                  {"mixer.name": "vdn"})
)
register_algorithm(
    AlgorithmSpec("qmix", "QMIX: monotonic state-conditioned mixing network", TDObjective,
                  {"mixer.name": "qmix"})
)
register_algorithm(
    AlgorithmSpec("qtran", "QTRAN-base: joint Q_jt and V(s) beside the VDN sum; L_td + L_opt + L_nopt",
                  QTranObjective, {"mixer.name": "qtran"}, options=QTranConfig)
)
register_algorithm(
    AlgorithmSpec("ow_qmix", "optimistically-weighted QMIX: weighted TD towards an unrestricted central Q*",
                  OWQMixObjective, {"mixer.name": "qmix"}, options=WQMixConfig)
)
register_algorithm(
    AlgorithmSpec("cw_qmix", "centrally-weighted QMIX: weighted TD towards an unrestricted central Q*",
                  CWQMixObjective, {"mixer.name": "qmix"}, options=WQMixConfig)
)
register_algorithm(
    AlgorithmSpec("qplex", "QPLEX: duplex dueling mixer with attention weights on the advantages",
                  TDObjective, {"mixer.name": "qplex"})
)
register_algorithm(
    AlgorithmSpec("qatten", "Qatten: multi-head attention over the agents' values, weights from state and features",
                  TDObjective, {"mixer.name": "qatten"})
)
register_algorithm(
    AlgorithmSpec("dmix", "DMIX (DFAC): QMIX on the quantiles' means plus their summed centred shapes; quantile loss",
                  DMixObjective, {"mixer.name": "qmix", "agent.n_quantiles": 8}, distributional=True)
)
register_algorithm(
    AlgorithmSpec("coma", "COMA: actor-critic with a centralised critic and the counterfactual advantage; on-policy",
                  COMAObjective, {"mixer.name": "none", "explore.epsilon_start": 0.5, "explore.epsilon_finish": 0.01,
                                  "explore.anneal_steps": 100_000}, options=COMAConfig, policy=True)
)


def get_algorithm(name: str) -> AlgorithmSpec:
    if name not in ALGORITHMS:
        raise ConfigError(f"algo: unknown method {name!r}; allowed: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
