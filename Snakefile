# insarclust: InSAR deformation-regime clustering.
# Run the embedded demo:   snakemake --cores all
# On SLURM:                snakemake --profile slurm
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/decompose.smk"
include: "workflow/rules/graph.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/smooth.smk"
include: "workflow/rules/kmeans.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/dsc.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/gis.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
