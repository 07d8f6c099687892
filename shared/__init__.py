"""Code shared by workers and training: settings, bus contract, preprocessing, storage."""
