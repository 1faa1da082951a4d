"""Development tools kept out of the shipped `detector` package: the synthetic telemetry generator
(`python -m tools.synth`) and the `make demo` driver (`python -m tools.demo`). Nothing in `detector` imports them."""
