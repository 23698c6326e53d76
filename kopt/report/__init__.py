"""Reports: tables, plots, a self-contained HTML page, history trends and regression verdicts."""
