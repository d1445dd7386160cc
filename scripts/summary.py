"""Rule summary: results/summary.tsv (site x method x metric) and the report's comparison page."""
from insarclust import summary
from insarclust.logs import start_rule

log = start_rule(snakemake)
table = summary.summarize(snakemake.input.metrics)
summary.write_summary(table, snakemake.output.tsv)
summary.write_comparison_html(snakemake.input.metrics, snakemake.output.html,
                              provenance_paths=snakemake.input.provenance, table=table,
                              label_paths=snakemake.input.labels)
log.info("summary: %d rows from %d metrics files", len(table), len(snakemake.input.metrics))
