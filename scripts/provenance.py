"""Rule provenance: results/{site}/provenance.json.

The resolved config is read here at run time (``snakemake.config``) rather than
passed as a param, so that a config change reruns this rule only through the
outputs it changes, never on its own (a params change would rerun every site).
"""
from pathlib import Path

from insarclust import provenance
from insarclust.jsonio import write_json
from insarclust.logs import start_rule

log = start_rule(snakemake)
site = snakemake.wildcards.site
record = provenance.build_provenance(
    site,
    config=snakemake.config,
    site_row=snakemake.params.site,
    input_format=snakemake.params.fmt,
    shards_path=snakemake.input.shards,
    source_files=snakemake.input.sources,
    extra_files=snakemake.input.truth,
    metrics_paths=snakemake.input.metrics,
    rules=snakemake.params.rules,
    repo_dir=Path(snakemake.scriptdir).parent,
    hash_files=snakemake.params.hash_sources,
)
write_json(record, snakemake.output[0])
log.info("provenance of %s: commit %s, %d rules with records", site, record["git"]["commit"],
         len(record["stages"]))
