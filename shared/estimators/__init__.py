"""Serving-side estimators that need more than scikit-learn; each module is imported lazily by its
loader in shared.models.ESTIMATOR_LOADERS, so a service pays only for the family it serves."""
