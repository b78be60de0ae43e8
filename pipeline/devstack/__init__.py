"""Local development services started by the project's scripts: the Kafka (KRaft) broker from Maven
Central artifacts and PostgreSQL from Debian's packages.

May import the libraries and `pipeline.settings`; no other part of `pipeline`.
"""
