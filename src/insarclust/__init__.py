"""insarclust: deformation-regime clustering of InSAR ground-motion catalogues."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("insarclust")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
