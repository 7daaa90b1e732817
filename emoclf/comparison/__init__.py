"""Side-by-side comparison of runs: table, figures."""
