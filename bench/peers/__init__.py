"""Reference apps the benchmarks compare the project against, each as small as its job allows."""
