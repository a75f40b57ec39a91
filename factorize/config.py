"""Typed, validated run configuration.

Every knob a run has lives in one dataclass tree so that a run directory's `config.yaml` records
everything in force, and `key=value` overrides reach any field by its dotted path. Values are
validated when set: an unknown key or a value of the wrong kind raises `ConfigError` naming the
field and what it accepts, which the CLI turns into exit status 2.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from factorize.errors import ConfigError


@dataclass
class EnvConfig:
    """Which task to train on; fields beyond `name` are read only by the envs that use them."""

    name: str = "matrix:qtran"
    """Task as `family:argument` (see `factorize list envs`), e.g. matrix:qtran, mpe:simple_spread_v3."""
    payoff: list | None = None
    """Payoff tensor for `matrix` games: nested lists, one axis per agent."""
    k: float = -100.0
    """Miscoordination penalty of `matrix:penalty`."""
    reward: Literal["sum", "mean"] = "sum"
    """How per-agent rewards become the team reward (PettingZoo, LBF, RWARE)."""
    kwargs: dict = field(default_factory=dict)
    """Keyword arguments passed to the wrapped env's constructor, e.g. '{max_cycles: 50}'."""
    time_limit: Literal["truncate", "terminate"] = "truncate"
    """How an episode that hits its time limit ends for the learner: `truncate` bootstraps from
    the last state (the limit is not part of the task); `terminate` counts it as the task's end,
    as EPyMARL's gym wrapper does on MPE and LBF. Where the state carries no clock (MPE), bootstrapping
    makes the values infinite-horizon, about 1/(1-gamma) rewards deep."""
    backend: Literal["auto", "native", "pettingzoo"] = "auto"
    """For envs with a native vectorised implementation (mpe:simple_spread_v3): `auto` uses it
    when it supports the kwargs, `pettingzoo` forces the original package."""


@dataclass
class AgentConfig:
    """The shared agent network."""

    kind: Literal["mlp", "gru"] = "gru"
    """Agent network: a feed-forward MLP or a recurrent GRU (the QMIX paper's)."""
    hidden_dim: int = 64
    """Width of the agent network's hidden layers."""
    agent_id: bool = True
    """Append a one-hot agent id to each agent's input (lets a shared network specialise)."""
    last_action: bool = True
    """Append the agent's previous action (one-hot) to its input."""
    shared: bool = True
    """One network for all agents (parameter sharing) or one per agent."""
    n_quantiles: int = 1
    """Quantiles of each action's return the network outputs (DMIX); acting and the shared
    targets use their mean. 1: a plain action value."""


def bounded(default: Any, low: float, high: float) -> Any:
    """A dataclass field whose value must lie in [low, high]: `validate` checks it wherever the
    field is declared, so a method's options carry their own ranges beside their code."""
    return field(default=default, metadata={"bounds": (low, high)})


WIDTH = (1, 16_384)
"""Bounds of a layer width: positive, and below what would only surface as an allocation failure."""


@dataclass
class MixerConfig:
    """Options every mixer has. A mixer's own options extend this class in the mixer's module and
    are registered with it (`register_options`); setting `mixer.name` switches to that class."""

    name: str | None = None
    """The mixer (set by --algo): none, vdn, qmix, qtran, qplex, qatten."""
    init: Literal["default", "orthogonal", "xavier"] = "default"
    """Initialisation of every linear layer of the mixer (and of an objective's networks):
    torch's default, orthogonal (JaxMARL) or Xavier-uniform weights with zero biases."""
    init_scale: float = bounded(1.0, 1e-12, math.inf)
    """Gain of `orthogonal` / `xavier` initialisation (JaxMARL's QMIX uses 0.001: Q_tot starts flat)."""
    final_bias_init: float | None = None
    """Initial bias of the state value V(s) that Q_tot adds (the design card's b2): start Q_tot
    near a chosen value, e.g. the expected return. None keeps the initialisation's."""


@dataclass
class LearnerConfig:
    """The one trainer shared by every method."""

    optimizer: Literal["adam", "rmsprop", "radam"] = "adam"
    """Optimiser of all trained parameters (PyMARL uses rmsprop, EPyMARL adam, JaxMARL radam)."""
    lr: float = 5e-4
    """Learning rate of the agent networks (and of the mixer unless `mixer_lr` is set)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """`linear` decays every learning rate to 0 over the run's `steps` (JaxMARL's LR_LINEAR_DECAY)."""
    learning_starts: int = 0
    """Env steps collected before the first update (besides waiting for a full batch of episodes)."""
    mixer_lr: float | None = None
    """Separate learning rate for mixer (and objective) parameters; None uses `lr`."""
    rms_alpha: float = 0.99
    """RMSprop's smoothing constant."""
    optim_eps: float = 1e-5
    """The optimiser's epsilon (denominator term)."""
    gamma: float = 0.99
    """Discount factor."""
    batch_size: int = 32
    """Episodes per sampled update batch."""
    buffer_size: int = 5000
    """Replay capacity in episodes."""
    target_update: Literal["soft", "hard", "none"] = "hard"
    """`none` evaluates targets with the online networks (the target-network ablation)."""
    tau: float = 0.005
    """Polyak rate of `soft` target updates."""
    target_interval: int = 200
    """Updates between hard target copies."""
    grad_clip: float | None = 10.0
    """Max gradient norm; None disables clipping."""
    double_q: bool = True
    """Pick target actions with the online networks, evaluate them with the targets."""
    td_lambda: float = bounded(0.0, 0.0, 1.0)
    """lambda of multi-step targets over the sampled episodes; 0: today's one-step target."""
    lambda_kind: Literal["peng", "td", "retrace"] = "peng"
    """`peng`: Peng's Q(lambda), bootstrapping from the greedy next action (PyMARL2's TD(lambda));
    `td`: from the action taken next (on-policy TD(lambda)); `retrace`: the greedy value with traces
    cut by lambda min(1, pi/mu), mu recorded at collection."""
    reward_scale: float = 1.0
    """Multiplier on the team reward the learner sees (after `reward_norm`)."""
    reward_norm: Literal["none", "standardise", "clip"] = "none"
    """The learner's view of the team reward: `standardise` by the running mean and std of all
    rewards collected (EPyMARL's standardise_rewards), or `clip` to [-1, 1]."""
    per: bool = False
    """Prioritised replay over episodes: sampled in proportion to (mean |TD error| + per_eps)^per_alpha,
    with importance weights in every objective's loss."""
    per_alpha: float = bounded(0.6, 0.0, 1.0)
    """How strongly priorities skew sampling (0: uniform)."""
    per_beta: float = bounded(0.4, 0.0, 1.0)
    """Importance-weight exponent at the start, annealed linearly to 1 over the run."""
    per_eps: float = bounded(1e-6, 0.0, math.inf)
    """Added to each episode's TD error so none has priority 0."""
    seq_len: int = bounded(0, 0, 1_000_000)
    """Train on windows of this many steps of each sampled episode (0: whole episodes)."""
    burn_in: int = bounded(0, 0, 1_000_000)
    """Steps before each window that run the recurrent agents without loss (with seq_len > 0)."""
    updates_per_step: float | None = None
    """Updates per environment step; None means one update per collected episode (PyMARL)."""


@dataclass
class ExploreConfig:
    """Exploration in training rollouts (tests are greedy)."""

    kind: Literal["epsilon", "boltzmann"] = "epsilon"
    """Epsilon-greedy over available actions, or Boltzmann: softmax(Q / temperature) over them."""
    schedule: Literal["linear", "exp", "fixed"] = "linear"
    """How epsilon (or the temperature) moves from start to finish; `fixed` stays at the start."""
    epsilon_start: float = 1.0
    """Epsilon at step 0 (1 with `fixed` gives uniform random data)."""
    epsilon_finish: float = 0.05
    """Epsilon after annealing."""
    anneal_steps: int = 50_000
    """Env steps over which `linear` goes from start to finish."""
    decay: float = 0.995
    """Per-episode multiplier of `exp` (the QMIX design card)."""
    temperature_start: float = bounded(1.0, 1e-6, math.inf)
    """Boltzmann temperature at step 0."""
    temperature_finish: float = bounded(0.05, 1e-6, math.inf)
    """Boltzmann temperature after annealing."""
    bonus: Literal["none", "count"] = "none"
    """`count`: a UCB-style bonus bonus_beta / sqrt(n + 1) on each action value at selection,
    n counted over SimHash-ed (observation, action) pairs of training rollouts."""
    bonus_beta: float = bounded(0.1, 0.0, math.inf)
    """Scale of the count bonus."""
    intrinsic: Literal["none", "rnd"] = "none"
    """`rnd`: random network distillation's novelty of the next global state, added to the team
    reward the learner sees (the predictor trains alongside and is checkpointed)."""
    intrinsic_beta: float = bounded(0.1, 0.0, math.inf)
    """Scale of the intrinsic reward."""


@dataclass
class RunnerConfig:
    """Rollouts, logging and evaluation."""

    n_envs: int = 8
    """Envs stepped together by one batched forward pass."""
    rollout: Literal["lockstep", "streaming"] = "lockstep"
    """How training envs run: `lockstep` runs E whole episodes together, every env waiting for the
    longest; `streaming` resets each env as its episode ends and hands finished episodes to the
    learner at once (no env idles, but an episode's later steps act with updated weights). The
    same when every episode has the same length."""
    test_episodes: int = 32
    """Greedy test episodes per evaluation."""
    eval_interval: int = 5_000
    """Env steps between test evaluations."""
    log_interval: int = 1_000
    """Env steps between training rows in metrics.csv."""
    igm: bool = True
    """Measure IGM consistency at each test evaluation (`igm_agreement`, `igm_regret` in metrics.csv):
    whether the agents' greedy joint action maximises the method's joint value."""
    igm_max_joint: int = bounded(4096, 1, 10_000_000)
    """Largest joint action space enumerated exactly; larger ones use coordinate ascent
    (columns `igm_agreement_ascent`, `igm_regret_ascent`)."""
    igm_states: int = bounded(256, 1, 1_000_000)
    """Test-episode states checked per evaluation (evenly spaced over the evaluation's real steps)."""
    loggers: list = field(default_factory=lambda: ["csv"])
    """Where metrics go: csv (metrics.csv, always written) plus `tensorboard` and `wandb` (offline
    unless WANDB_MODE is set), each needing its extra, e.g. `runner.loggers=[csv,tensorboard]`."""
    wandb_project: str = "factorize"
    """The W&B project of `wandb` logging."""
    checkpoint_interval: int = 50_000
    """Env steps between checkpoints (0: only the final one), so a killed run loses minutes, not
    the run; SIGTERM also writes one before the process exits. Lockstep rollouts learn the same
    whatever the interval; streaming ones finish their episodes in flight at each checkpoint."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    checkpoint_buffer: Literal["auto", "on", "off"] = "auto"
    """Store the replay buffer in checkpoints (needed for exact resume); `auto` does so when it
    is at most `checkpoint_buffer_max_mb`."""
    checkpoint_buffer_max_mb: float = 512.0
    """Largest replay buffer `checkpoint_buffer=auto` stores, in MB."""


@dataclass
class AlgoConfig:
    """The method; a method with options of its own extends this class beside its objective and
    registers it with the method (`AlgorithmSpec.options`)."""

    name: str = "qmix"
    """The method (set by --algo; see `factorize list algos`)."""


@dataclass
class RunConfig:
    """Everything one training run needs; `config.yaml` in a run directory is this, dumped."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    seed: int = 0
    """Seeds every random stream of the run: the same seed gives the same curve."""
    steps: int = 20_000
    """Total environment steps (summed over parallel envs)."""
    preset: str | None = None
    """A named set of settings from another library (seed, epymarl, pymarl); see the README."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where networks, updates and rollouts' forward passes run; replay stays in host memory and
    each sampled batch is copied over (`cuda` needs a CUDA build of torch and a GPU)."""
    torch_threads: int = 1
    """Intra-op threads per run; 1 keeps parallel runs from oversubscribing cores."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`, converting where it is lossless."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(path, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} is not {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if value == a and type(value) is type(a):
                return a
        # allow the string spelling of numbers, e.g. hypernet_layers='2'
        for a in allowed:
            if str(value) == str(a):
                return a
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(str(a) for a in allowed)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{path}: {value!r} is not a bool (true or false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: {value!r} is not an int")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not a number")
        if isinstance(value, (int, float)):
            out = float(value)
            if out != out or out in (float("inf"), float("-inf")):
                raise ConfigError(f"{path}: {value!r} is not a finite number")
            return out
        raise ConfigError(f"{path}: {value!r} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: {value!r} is not a string")
    if tp is list or origin is list:
        if isinstance(value, list):
            return value
        raise ConfigError(f"{path}: {value!r} is not a list")
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{path}: {value!r} is not a mapping")
    return value


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string (it wants `1.0e-3`); researchers write `lr=1e-3`."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Safe YAML with scientific notation read as numbers (configs, specs, overrides)."""
    return yaml.load(text, Loader=_Loader)


def parse_value(text: str) -> Any:
    """Parse the right-hand side of `key=value` as YAML (numbers, lists, true/false, none)."""
    try:
        return load_yaml(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {str(exc).splitlines()[0]}") from None


OPTION_SECTIONS = ("mixer", "algo")
"""Sections whose fields depend on a name: the mixer's options, the method's options."""

_OPTIONS: dict[str, dict[str, type]] = {section: {} for section in OPTION_SECTIONS}

RENAMED_KEYS = {"mixer.central_embed": "algo.central_embed"}
"""Keys that moved when options went to their methods: the old spelling still works wherever the
chosen mixer has no field of that name (WQMIX's central Q* width is now the method's option)."""


class UnknownOption(ConfigError):
    """A `mixer.` or `algo.` key that the chosen mixer or method does not have."""


def register_options(section: str, name: str, options: type) -> None:
    """Declare the options dataclass of a mixer (`section="mixer"`) or a method (`"algo"`);
    it must extend `MixerConfig` or `AlgoConfig`."""
    base = MixerConfig if section == "mixer" else AlgoConfig
    if section not in OPTION_SECTIONS or not (dataclasses.is_dataclass(options) and isinstance(options, type)
                                              and issubclass(options, base)):
        raise TypeError(f"register_options: {section!r} options must be a dataclass extending {base.__name__}")
    _OPTIONS[section][name] = options


def _load_registries() -> None:
    """Mixers and methods register their options on import; config.py stays a leaf module, so it
    imports them only when a name-dependent section is first needed."""
    import factorize.algorithms
    import factorize.mixers  # noqa: F401


def options_class(section: str, name: str | None) -> type:
    """The options dataclass of mixer or method `name` (the bare base class when it has none)."""
    _load_registries()
    base = MixerConfig if section == "mixer" else AlgoConfig
    return _OPTIONS[section].get(name or "", base)


def registered_options(section: str) -> dict[str, type]:
    """Every mixer's (or method's) own options class, by name."""
    _load_registries()
    return dict(_OPTIONS[section])


def _option_owners(section: str, option: str) -> list[str]:
    """The mixers or methods that declare `option` (for leniency and for messages)."""
    return [name for name, cls in registered_options(section).items()
            if option in {f.name for f in dataclasses.fields(cls)}]


def _retype(cfg: RunConfig, section: str, name: str | None) -> None:
    """Give a section the options class of its new name, keeping the values of the fields every
    mixer (or method) shares; the new one's own options start at their defaults."""
    old = getattr(cfg, section)
    cls = options_class(section, name)
    if type(old) is cls:
        return
    base = MixerConfig if section == "mixer" else AlgoConfig
    shared = {f.name: getattr(old, f.name) for f in dataclasses.fields(base)}
    setattr(cfg, section, cls(**shared))


def set_field(cfg: RunConfig, path: str, value: Any) -> None:
    """Set a dotted field with validation; unknown keys list the allowed ones."""
    path = _renamed(cfg, path)
    parts = path.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(type(obj))
        prefix = ".".join(parts[:i])
        if part not in hints:
            if i == 1 and prefix in OPTION_SECTIONS:
                allowed = ", ".join(f"{prefix}.{k}" for k in hints)
                others = _option_owners(prefix, part)
                elsewhere = f" (an option of {', '.join(others)})" if others else ""
                owner = "method" if prefix == "algo" else "mixer"
                raise UnknownOption(f"{path}: {owner} {obj.name or 'none'} has no option {part!r}{elsewhere}; "
                                    f"its options: {allowed}")
            where = f"{prefix}." if prefix else ""
            allowed = ", ".join(f"{where}{k}" for k in hints)
            raise ConfigError(f"unknown config key {path!r}; allowed: {allowed}")
        tp = hints[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}: expected a mapping of its fields")
                for k, v in _names_first(value):
                    set_field(cfg, f"{path}.{k}", v)
                return
            setattr(obj, part, _coerce(path, value, tp))
            if part == "name" and prefix in OPTION_SECTIONS:
                _retype(cfg, prefix, getattr(obj, part))
            return
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key {path!r}: {'.'.join(parts[: i + 1])} has no fields")
        obj = getattr(obj, part)


def _renamed(cfg: RunConfig, path: str) -> str:
    section, _, option = path.partition(".")
    if path in RENAMED_KEYS and option not in {f.name for f in dataclasses.fields(getattr(cfg, section))}:
        return RENAMED_KEYS[path]
    return path


def _names_first(overrides: dict[str, Any]) -> list[tuple[str, Any]]:
    """`mixer.name` and `algo.name` before the options they decide, whatever order they came in."""
    return sorted(overrides.items(), key=lambda kv: str(kv[0]).rpartition(".")[2] != "name")


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any], *, where_present: bool = False) -> RunConfig:
    """Set each key. `where_present`: a mixer or method option that the chosen one lacks but
    another declares is skipped (a preset's QMIX widths do not stop it applying to VDN)."""
    for key, value in _names_first(overrides):
        try:
            set_field(cfg, key, value)
        except UnknownOption:
            section, _, option = _renamed(cfg, key).partition(".")
            if not (where_present and _option_owners(section, option)):
                raise
    return cfg


def check_key(path: str, value: Any) -> None:
    """Check a key and value without knowing the method (a spec's shared overrides): a mixer or
    method option must be declared by some mixer or method, with a value its type accepts."""
    section, _, option = path.partition(".")
    scratch = RunConfig()
    if section in OPTION_SECTIONS and option and option != "name":
        owners = _option_owners(section, option) or _option_owners(*RENAMED_KEYS.get(path, path).split(".", 1))
        base = MixerConfig if section == "mixer" else AlgoConfig
        if not owners and option not in {f.name for f in dataclasses.fields(base)}:
            every = sorted({f.name for cls in [base, *registered_options(section).values()]
                            for f in dataclasses.fields(cls)})
            what = "method" if section == "algo" else "mixer"
            raise UnknownOption(f"{path}: no {what} has this option; allowed: "
                                + ", ".join(f"{section}.{k}" for k in every))
        if owners:
            set_field(scratch, f"{section}.name", owners[0])
    set_field(scratch, path, value)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `["a.b=1", "c=[1,2]"]` into `{"a.b": 1, "c": [1, 2]}`."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        out[key] = parse_value(text)
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dict as dotted keys (`env.kwargs` stays one value)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "kwargs":
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def non_defaults(obj: Any, prefix: str = "") -> dict[str, Any]:
    """The dotted keys of a config tree whose values differ from their field's default.

    A section's defaults are those of its own class (a method's options class included), so a
    field added later with a default that keeps the old behaviour never appears here; that is
    what keeps a sweep's config hash, and so its finished runs, valid across versions.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(non_defaults(value, f"{prefix}{f.name}."))
        elif value != _field_default(f):
            out[f"{prefix}{f.name}"] = value
    return out


def _check_bounds(obj: Any, path: str = "") -> None:
    """Every `bounded` field in the tree, wherever declared (a method's options included)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_bounds(value, f"{path}{f.name}.")
        elif "bounds" in f.metadata and value is not None:
            low, high = f.metadata["bounds"]
            if not low <= value <= high:
                if high == math.inf:
                    allowed = "must be positive" if low > 0 else f"must be >= {low}"
                else:
                    allowed = f"must be in [{low}, {high}]"
                raise ConfigError(f"{path}{f.name}: {allowed}, got {value}")


def validate(cfg: RunConfig) -> None:
    """Cross-field and range checks that a single field's type cannot express."""
    _check_bounds(cfg)
    positive = {
        "steps": cfg.steps,
        "agent.hidden_dim": cfg.agent.hidden_dim,
        "learner.batch_size": cfg.learner.batch_size,
        "learner.buffer_size": cfg.learner.buffer_size,
        "learner.target_interval": cfg.learner.target_interval,
        "runner.n_envs": cfg.runner.n_envs,
        "runner.eval_interval": cfg.runner.eval_interval,
        "runner.log_interval": cfg.runner.log_interval,
        "runner.keep_checkpoints": cfg.runner.keep_checkpoints,
        "learner.lr": cfg.learner.lr,
        "agent.n_quantiles": cfg.agent.n_quantiles,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name}: must be positive, got {value}")
    # generous ceilings: past them a typo would only surface as an allocation failure
    ceilings = {
        "agent.hidden_dim": (cfg.agent.hidden_dim, 16_384),
        "agent.n_quantiles": (cfg.agent.n_quantiles, 1_024),
        "runner.n_envs": (cfg.runner.n_envs, 4_096),
        "runner.test_episodes": (cfg.runner.test_episodes, 1_000_000),
        "learner.batch_size": (cfg.learner.batch_size, 1_000_000),
        "learner.buffer_size": (cfg.learner.buffer_size, 10_000_000),
        "seed": (cfg.seed, 2**32 - 1),
        "steps": (cfg.steps, 10**12),
    }
    for name, (value, ceiling) in ceilings.items():
        if value > ceiling:
            raise ConfigError(f"{name}: {value} is above the supported maximum {ceiling}")
    nonneg = {
        "seed": cfg.seed,
        "runner.test_episodes": cfg.runner.test_episodes,
        "runner.checkpoint_interval": cfg.runner.checkpoint_interval,
        "learner.learning_starts": cfg.learner.learning_starts,
        "runner.checkpoint_buffer_max_mb": cfg.runner.checkpoint_buffer_max_mb,
        "torch_threads": cfg.torch_threads,
    }
    for name, value in nonneg.items():
        if value < 0:
            raise ConfigError(f"{name}: must be >= 0, got {value}")
    for name, value in {
        "learner.gamma": cfg.learner.gamma,
        "learner.tau": cfg.learner.tau,
        "explore.epsilon_start": cfg.explore.epsilon_start,
        "explore.epsilon_finish": cfg.explore.epsilon_finish,
        "explore.decay": cfg.explore.decay,
    }.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}: must be in [0, 1], got {value}")
    if cfg.learner.mixer_lr is not None and cfg.learner.mixer_lr <= 0:
        raise ConfigError(f"learner.mixer_lr: must be positive or none, got {cfg.learner.mixer_lr}")
    if cfg.learner.grad_clip is not None and cfg.learner.grad_clip <= 0:
        raise ConfigError(f"learner.grad_clip: must be positive or none, got {cfg.learner.grad_clip}")
    if cfg.learner.updates_per_step is not None and cfg.learner.updates_per_step <= 0:
        raise ConfigError("learner.updates_per_step: must be positive or none")
    if cfg.explore.anneal_steps < 0:
        raise ConfigError("explore.anneal_steps: must be >= 0")
    if cfg.learner.burn_in > 0 and cfg.learner.seq_len == 0:
        raise ConfigError(f"learner.burn_in: warms up the state before a window; set learner.seq_len > 0 "
                          f"(whole episodes need none), got burn_in={cfg.learner.burn_in} with seq_len=0")
    if cfg.learner.batch_size > cfg.learner.buffer_size:
        raise ConfigError(
            f"learner.batch_size: {cfg.learner.batch_size} exceeds learner.buffer_size "
            f"{cfg.learner.buffer_size}"
        )


RETIRED_KEYS = frozenset({"mixer.attend_embed"})
"""Keys that older versions wrote into config.yaml and that no code reads: ignored on load, so
old run directories still resume and report."""


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a config from `config.yaml`, validating every field as an override would.

    Older versions recorded every mixer's and method's options in one flat section; the ones the
    run's own mixer and method lack were never in force and are dropped. A key no mixer or method
    declares any more is a ConfigError naming the run's options (exit 2, not a traceback).
    """
    cfg = RunConfig()
    flat = flatten({k: v for k, v in data.items() if k not in ("provenance", "sweep")})
    apply_overrides(cfg, {k: v for k, v in flat.items() if k not in RETIRED_KEYS}, where_present=True)
    validate(cfg)
    return cfg


@dataclass(frozen=True)
class KeyDoc:
    """One config key as `factorize list keys` shows it."""

    key: str
    type: str
    default: Any
    doc: str


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under a field) of a dataclass, read from its source.

    Python keeps no runtime record of them; reading the source keeps one place for a field's
    documentation: beside the field.
    """
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's options documented in its own module
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (frozen app): keys still list, without docs
            continue
        klass_node = tree.body[0]
        if not isinstance(klass_node, ast.ClassDef):
            continue
        for node, nxt in itertools.pairwise(klass_node.body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def describe_keys(prefix: str = "") -> list[KeyDoc]:
    """Every settable key under `prefix` (a dotted path or its start), from the dataclasses
    themselves; a mixer's or method's own options follow its section, with their owners named."""
    out: list[KeyDoc] = []

    def walk(cls: type, default: Any, path: str) -> None:
        hints = typing.get_type_hints(cls)
        docs = _field_docs(cls)
        for f in dataclasses.fields(cls):
            key = f"{path}{f.name}"
            value = getattr(default, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], value, f"{key}.")
                if f.name in OPTION_SECTIONS:
                    own_options(f.name)
            elif key.startswith(prefix):
                out.append(KeyDoc(key, _type_name(hints[f.name]), value, docs.get(f.name, "")))

    def own_options(section: str) -> None:
        base = {f.name for f in dataclasses.fields(MixerConfig if section == "mixer" else AlgoConfig)}
        seen: set[str] = set()
        for cls in registered_options(section).values():
            hints, docs, default = typing.get_type_hints(cls), _field_docs(cls), cls()
            for f in dataclasses.fields(cls):
                key = f"{section}.{f.name}"
                if f.name in base or f.name in seen or not key.startswith(prefix):
                    continue
                seen.add(f.name)
                owners = ", ".join(_option_owners(section, f.name))
                doc = f"[{owners}] {docs.get(f.name, '')}".rstrip()
                out.append(KeyDoc(key, _type_name(hints[f.name]), getattr(default, f.name), doc))

    walk(RunConfig, RunConfig(), "")
    if not out:
        groups = sorted({f.name for f in dataclasses.fields(RunConfig)})
        raise ConfigError(f"keys: no config key starts with {prefix!r}; top-level keys: {', '.join(groups)}")
    return out

