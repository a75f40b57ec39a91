"""factorize: compare multi-agent value-factorisation methods on the same tasks.

Parts: `algorithms` (methods = mixer + objective + defaults), `mixers`, `networks` (shared
agent networks), `learner` (the one trainer), `envs`, `experiments`, `analysis`.
"""

__version__ = "0.1.0"
