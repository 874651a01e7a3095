"""engage: social engagement monitoring for B2B marketing and sales teams.

This package holds what has no better home among the project's top-level
packages: settings, the sources configuration, the warehouse (schema,
migrations, upserts), the pipeline steps that the Airflow DAG and the CLI
share, and the ``engage`` command itself.
"""

__version__ = "0.1.0"
