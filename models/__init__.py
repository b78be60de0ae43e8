"""The machine-learning side: instructions, encoder, executor, training, evaluation, labels, registry.

May import `connectors` (the database, the news item); never `alerts` or `pipeline`.
"""
