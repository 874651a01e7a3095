# The engage image: Airflow's official image with the project baked in.
# Used by every Airflow service of docker-compose.yml (docs/production.md).
#
# The tag must match the Airflow pin and a Python version of pyproject.toml;
# tests/test_compose.py fails when they disagree.
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
# Airflow's constraints keep Airflow's own dependencies at the versions it was
# released with. Build with --build-arg AIRFLOW_CONSTRAINTS_URL= to let pip
# resolve from pyproject.toml alone (as the project's CI does).
ARG AIRFLOW_CONSTRAINTS_URL=https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt

USER root
# Named volumes start with the ownership of these directories.
RUN mkdir -p /opt/engage/var /opt/engage/config /opt/airflow/auth \
    && chown -R airflow:0 /opt/engage /opt/airflow/auth \
    && chmod -R g+rwX /opt/engage /opt/airflow/auth
USER airflow
WORKDIR /opt/engage

# The project and its dependencies, from pyproject.toml only. The install is
# editable so that the code finds dags/ and config/ beside its packages, as in
# a checkout (engage.demo, engage.pools).
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 engage ./engage
COPY --chown=airflow:0 collectors ./collectors
COPY --chown=airflow:0 transforms ./transforms
COPY --chown=airflow:0 models ./models
COPY --chown=airflow:0 sql ./sql
RUN pip install --no-cache-dir \
        ${AIRFLOW_CONSTRAINTS_URL:+--constraint "${AIRFLOW_CONSTRAINTS_URL}"} \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -e .

COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 config ./config

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/engage/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ENGAGE_HOME=/opt/engage/var \
    ENGAGE_SOURCES=/opt/engage/config/sources.yml

# Raw landing, staging and reports: shared by every worker (a named volume in
# docker-compose.yml; shared storage when workers run on several hosts).
VOLUME ["/opt/engage/var"]
