"""Rule ``k_sweep_figure``: metrics vs k from clusters/kmeans-{variant}_k.tsv -> figures/kmeans-{variant}_k.png."""
import matplotlib.pyplot as plt
import pandas as pd

from insarclust import figures
from insarclust.logs import start_rule

start_rule(snakemake)
fig = figures.plot_k_sweep(pd.read_csv(snakemake.input[0], sep="\t"), snakemake.output[0],
                           title=f"{snakemake.wildcards.site} - kmeans-{snakemake.wildcards.variant}",
                           dpi=int(snakemake.params.dpi))
plt.close(fig)
