"""Federated query, the part the engines take part in: the planner (``plan.py``: what
each table reference is asked), predicates rendered per dialect (``predicates.py``) and
the query sources (``sources.py``). ``opendms.query`` runs a query over them."""
