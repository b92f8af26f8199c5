"""The regression gate: a candidate run against a baseline, per system and metric, and the metrics' history.

The data flow of one gate (`run.gate`, for `run --gate` and `compare`):

1. resolve the baseline: a results directory, an MLflow run id, the run `tag:K=V` names, or for `auto` the nearest
   comparable ancestor in the tracking store (`baseline`: by the lineage tags of `bench.lineage`, over the runs of
   `store`), with margins widened to the baselines' noise on request (`margins`);
2. compare: the rules and their margins (`rules`: each suite declares its ratio statistics, `suites.base.Ratio`),
   one row per system and rule (`rows`: the statistic, its interval and test, from `significance`), verdicts with
   Holm's adjustment and the report (`compare`);
3. emit: the report's Markdown to stdout, a file and the CI job summary;
4. tag: the candidate's logged run gets the outcome (`store.GATE_TAG`).

Beside it: the RTF noise of this machine for the timing margin (`rtf_noise`, `calibrate-rtf`) and the metrics'
history across commits with bands (`history`; rendered by `reports.history_report`). The clusters and the one rule
for too few of them are shared with the aggregates' intervals (`bench.stats`).
"""
