"""Reading run output: metrics files, curves and comparisons."""
