"""Running the pipeline as DVC experiments: named presets and the Optuna search over them."""
