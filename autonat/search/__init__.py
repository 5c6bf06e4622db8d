"""AutoNAT's searches: the generation strategy, the training strategy (Beta mask ratios), the objective."""
