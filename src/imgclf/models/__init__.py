"""What learns and what ships: the head on features, the CNN on pixels, training loops, soft voting,
the exported self-contained classifier and the prediction command."""
