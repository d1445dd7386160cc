"""Rule ``dsc_figure``: the DSC loss curve from dsc/train_log.tsv -> figures/dsc_loss.png; the
title says whether training converged (``training.converged`` of clusters/dsc.h5)."""
from insarclust.figures import plot_training_curve, read_train_log, read_training_record
from insarclust.logs import start_rule

start_rule(snakemake)
training = read_training_record(snakemake.input.labels)
plot_training_curve(read_train_log(snakemake.input.train_log), snakemake.output[0],
                    title=f"DSC ({snakemake.params.variant}) on {snakemake.wildcards.site}",
                    dpi=int(snakemake.params.dpi), converged=training.get("converged"),
                    tol=float(snakemake.params.tol))
