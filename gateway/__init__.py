"""The agency's gateway node: reads local records, normalises and encodes them under the
linkage secret and the sharing policy, and submits signed batches to the linkage service."""
