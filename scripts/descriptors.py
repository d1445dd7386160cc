"""Rule ``descriptors``: per-point trend, acceleration, annual cycle, step, residual RMS -> features/descriptors.h5."""
from insarclust.descriptors import write_descriptors
from insarclust.interpret import fit_settings
from insarclust.logs import start_rule, timed

log = start_rule(snakemake)
with timed(log, f"descriptors {snakemake.wildcards.site}"):
    write_descriptors(snakemake.input[0], snakemake.output[0], log=log,
                      **fit_settings(dict(snakemake.params.fit)))
