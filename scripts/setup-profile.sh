#!/usr/bin/env bash
# Make `snakemake --profile slurm` resolve from the repository root:
# Snakemake looks a profile name up in the working directory and in
# ~/.config/snakemake/, so link profiles/slurm to ./slurm (git-ignored).
# The workstation profile is used by path: snakemake --profile profiles/local
#
#   scripts/setup-profile.sh            # ./slurm -> profiles/slurm
#   scripts/setup-profile.sh --user     # also ~/.config/snakemake/insarclust-slurm
#                                       # (then: snakemake --profile insarclust-slurm
#                                       #  from any directory)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

link() {  # link TARGET NAME: create or refresh a symlink, never replace a real file
    local target=$1 name=$2
    if [ -L "$name" ] || [ ! -e "$name" ]; then
        ln -sfn "$target" "$name"
        echo "profile: $name -> $target"
    else
        echo "error: $name exists and is not a symlink; remove it or use the full path profiles/${name##*/}" >&2
        exit 1
    fi
}

link profiles/slurm slurm

if [ "${1:-}" = "--user" ]; then
    conf="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
    mkdir -p "$conf"
    link "$root/profiles/slurm" "$conf/insarclust-slurm"
fi
