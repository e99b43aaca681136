"""The bake drivers: one material (material.py), a pipeline.toml project (project.py) and the
comparison report's bakes (comparison.py). They call the stages (material loading, fit, .igs
writing, decoding, metrics); no stage imports them."""
