"""The analysis layer: the rank-file reader and gather into SONATA, statistics
(in memory and streaming), regime labels, analyze_run, load_run and the figures
of one run. No NEST, no MPI: pure functions on spikes and files."""
