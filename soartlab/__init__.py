"""SOART Lab engine: the SOART3 metric, distances, data loading, Siamese training,
evaluation and checkpoints. Importable and usable without Streamlit.

The public names below are imported lazily so that `python -m soartlab --help` and the
lightweight modules start without loading torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "soart3": "soartlab.metric",
    "soart3_pairwise": "soartlab.metric",
    "GammaTransform": "soartlab.transform",
    "SoartLabError": "soartlab.errors",
    "DataError": "soartlab.errors",
    "CheckpointError": "soartlab.errors",
    "get_distance": "soartlab.distances",
    "load_dataset": "soartlab.data",
    "load_checkpoint": "soartlab.checkpoint",
    "TrainConfig": "soartlab.config",
    "train": "soartlab.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'soartlab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
