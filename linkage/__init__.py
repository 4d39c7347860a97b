"""The central linkage service: intake, storage, blocking, comparison, classification,
clustering, and hot-spot queries with disclosure control. It never holds the linkage secret
and never imports the gateway."""
