"""Training suite: load Sentiment140, train the model families, evaluate, log to MLflow, promote."""
