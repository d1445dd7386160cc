"""Rule provenance: results/{site}/provenance.json.

The resolved config and each rule's code digest are read here at run time
(``snakemake.config``, :func:`insarclust.code_digest.code_digests`) rather than
passed as params, so that a config or code change reruns this rule only through
the outputs it changes, never on its own (a params change would rerun every site).
The digests read now are those of every output the record lists: a rule whose
digest changed has rerun before this one.
"""
from pathlib import Path

from insarclust import provenance
from insarclust.code_digest import code_digests
from insarclust.jsonio import write_json
from insarclust.logs import start_rule

log = start_rule(snakemake)
site = snakemake.wildcards.site
root = Path(snakemake.scriptdir).parent
rules = snakemake.params.rules
# every script, as the workflow computes them when it plans: one cache file serves both
scripts = {p.stem: p for p in sorted((root / "scripts").glob("*.py"))}
codes = code_digests(scripts, root / "src" / "insarclust", Path(".snakemake") / "insarclust-code-digests.json")
rules = {rule: {**info, "code": codes.get(info.get("script"))} for rule, info in rules.items()}
record = provenance.build_provenance(
    site,
    config=snakemake.config,
    site_row=snakemake.params.site,
    input_format=snakemake.params.fmt,
    shards_path=snakemake.input.shards,
    source_files=snakemake.input.sources,
    extra_files=snakemake.input.truth,
    metrics_paths=snakemake.input.metrics,
    rules=rules,
    repo_dir=root,
    hash_files=snakemake.params.hash_sources,
)
write_json(record, snakemake.output[0])
log.info("provenance of %s: commit %s, %d rules with records", site, record["git"]["commit"],
         len(record["stages"]))
