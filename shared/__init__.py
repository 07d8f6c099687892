"""Code shared by the workers and the training suite: settings, bus contract, preprocessing, storage."""
