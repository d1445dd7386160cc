"""Rule ``dsc_figure``: the DSC loss curve from dsc/train_log.tsv -> figures/dsc_loss.png."""
from insarclust.figures import plot_training_curve, read_train_log
from insarclust.logs import start_rule

start_rule(snakemake)
plot_training_curve(read_train_log(snakemake.input[0]), snakemake.output[0],
                    title=f"DSC ({snakemake.params.variant}) on {snakemake.wildcards.site}",
                    dpi=int(snakemake.params.dpi))
