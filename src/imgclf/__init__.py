"""imgclf: the library behind the DVC stages in stages/ (download, split, augment, bottleneck,
train, evaluate). It never reads params.yaml: stages validate params and pass typed values in.

Packages in the pipeline's order, each importing only the ones listed before it
(docs/architecture.md): core, config, data, features, models, review, experiments."""
