"""The estimators behind the serving model, one module per family, and what they share
(`base.py`: errors, the probability protocol, format names; `loaders.py`: the loader of each
format). They never import
shared.models: the model wraps an estimator, not the other way round."""
