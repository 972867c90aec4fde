"""The Gaussian process engine: the model, its acquisition, batch picks and the proposer."""
