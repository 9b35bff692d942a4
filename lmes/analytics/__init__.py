"""The analytics layer: the store as pandas frames, matplotlib plots, and an HTML report.

Executed, replayed and simulated migrations are read alike, through the read models:

* `load`: `migrations(store, ids=, origin=, status=, instance=, host=, since=, until=)` (one row
  per migration with phase durations, downtime, bytes, convergence and settings), `events`,
  `streams`, `progress`, `downtime_applied`, `planned_ramp`, `copy_seconds`, `phase_intervals`,
  `outcome_stats` (success rate and p50/p95/p99 per group), `expand`;
* `plots`: `phase_timeline`, `memory_remaining`, `phase_bars`, `downtime_ramps`,
  `migrations_gantt`, `downtime_distribution`, `total_time_distribution`, `sweep_heatmap`,
  `sweep_lines`, `prediction_errors`, each returning its Figure and drawing on `ax=` when given,
  and `save(fig, path)` for PNG or SVG;
* `report`: `render(streams)` and `write(html, path)`, behind `lmes report`.
"""
