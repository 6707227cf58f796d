"""napari-genprior: restore and decompose scientific images with generative priors."""

__version__ = "0.1.0"
