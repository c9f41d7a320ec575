"""Recommendation models behind one protocol (see ``recommend.models.base``).

| name | class | kind |
|---|---|---|
| ``popularity`` | ``Popularity`` | global / time-decayed / per-segment baseline |
| ``als`` | ``ALS`` | implicit-feedback matrix factorisation (``implicit``) |
| ``bpr`` | ``BPR`` | Bayesian personalised ranking (``implicit``) |
| ``item_knn`` | ``ItemKNN`` | item-item neighbours, cosine or BM25 (``implicit``) |
| ``ease`` | ``EASE`` | closed-form linear auto-encoder |
| ``rp3beta`` | ``RP3beta`` | random walk with popularity penalty (Paudel et al. 2016) |
| ``edlae`` | ``EDLAE`` | denoising linear auto-encoder, closed form (Steck 2020) |
| ``gfcf`` | ``GFCF`` | graph filter on normalised co-occurrence (Shen et al. 2021) |
| ``fusion`` | ``Fusion`` | EASE + RP3beta + EDLAE + GF-CF, weights learned on validation |
| ``lightfm`` | ``LightFM`` | hybrid with member and course features (``lightfm``) |
"""

from __future__ import annotations

import importlib

from recommend.errors import ConfigError
from recommend.models.base import Factors, History, Recommender, install_cold_route_chooser
from recommend.models.cold_routes import choose_cold_route

__all__ = ["MODEL_NAMES", "Factors", "History", "Recommender", "get_model_class", "make_model"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "popularity": ("recommend.models.popularity", "Popularity"),
    "als": ("recommend.models.implicit_models", "ALS"),
    "bpr": ("recommend.models.implicit_models", "BPR"),
    "item_knn": ("recommend.models.item_knn", "ItemKNN"),
    "ease": ("recommend.models.ease", "EASE"),
    "rp3beta": ("recommend.models.linear", "RP3beta"),
    "edlae": ("recommend.models.linear", "EDLAE"),
    "gfcf": ("recommend.models.linear", "GFCF"),
    "fusion": ("recommend.models.linear", "Fusion"),
    "lightfm": ("recommend.models.hybrid", "LightFM"),
}
MODEL_NAMES = tuple(_REGISTRY)

install_cold_route_chooser(choose_cold_route)


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (e.g. ``"als"``) or its class name."""
    key = name.lower()
    for short, (module, cls_name) in _REGISTRY.items():
        if key in (short, cls_name.lower()):
            cls: type[Recommender] = getattr(importlib.import_module(module), cls_name)
            return cls
    raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def make_model(name: str, **params: object) -> Recommender:
    """An unfitted model by name with the given hyper-parameters."""
    cls = get_model_class(name)
    valid = cls.param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        import difflib

        hints = {
            k: close[0]
            for k in unknown
            if (close := difflib.get_close_matches(k, valid, n=1, cutoff=0.5))
            or (close := [v for v in valid if v.endswith(k) or k in v])
        }
        did = "".join(f"; did you mean {v!r} for {k!r}?" for k, v in hints.items())
        raise ConfigError(
            f"unknown parameter(s) {unknown} for {name}; its parameters are {', '.join(valid)}{did}"
        )
    try:
        return cls(**params)
    except TypeError as err:
        raise ConfigError(f"bad parameters for {name}: {err}") from None


def __getattr__(name: str) -> object:
    # Model classes load on first use: importing recommend stays light for backends.
    for module, cls_name in _REGISTRY.values():
        if name == cls_name:
            return getattr(importlib.import_module(module), cls_name)
    raise AttributeError(f"module 'recommend.models' has no attribute {name!r}")
