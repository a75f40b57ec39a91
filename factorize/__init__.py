"""factorize: compare multi-agent value-factorisation methods on the same tasks.

Parts: `algorithms` (methods = mixer + objective + defaults), `mixers`, `networks` (shared
agent networks), `learner` (the one trainer), `training` (the loop), `envs`, `experiments`,
`analysis`. The Python API (`factorize.train`, `sweep`, `load_results`, `build_report`) is in
`api` and loads torch and pandas only when called.
"""

from factorize.api import build_report, load_results, sweep, train

__all__ = ["build_report", "load_results", "sweep", "train"]
__version__ = "0.1.0"
