"""From a source to the images the model sees: download (checksummed files, folders, archives),
decoding, the split by source and its near-duplicate audit, offline augmentation. Imports core and
config only: a change here never touches feature or model code."""
