"""Reports for sales and marketing: prospect engagement, KPIs against targets, alerts.

- ``build``: warehouse queries as of a date, into plain dataclasses.
- ``charts``: matplotlib (Agg) charts as inline SVG strings.
- ``config``: the ``targets:``, ``reports:`` and ``alerts:`` sections of the sources file.
- ``daily``: writes the HTML and CSV files per date, the index pages, the
  alert state, and delivers (``engage.delivery``). ``report_step`` is the
  daily run's report task.

See docs/reports.md.
"""
