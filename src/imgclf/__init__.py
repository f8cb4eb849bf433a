"""imgclf: the library behind the DVC stages in stages/ (download, split, augment, bottleneck,
train, evaluate). It never reads params.yaml: stages validate params and pass typed values in."""
