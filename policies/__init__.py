"""Sharing policies: the model, canonical hashes, the linkage schema, the .clks layout and
the enforcement decisions that both the gateway and the linkage service take."""
