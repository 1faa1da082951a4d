"""NetSupport Manager detector: Elastic's rule, on the stream."""

__version__ = "0.1.0"
