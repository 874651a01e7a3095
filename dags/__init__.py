"""Airflow DAGs: orchestration only. The work is in engage, collectors and transforms."""
