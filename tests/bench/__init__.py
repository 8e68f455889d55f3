"""The benchmark suite's smoke run: it must keep running and printing its figures."""
