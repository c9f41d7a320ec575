"""Data layer: schema validation, id maps, datasets, weighting, splits, simulator, loaders."""
