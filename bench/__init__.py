"""Load generation and measurement for the service (and for SGLang's and vLLM's servers, for comparison).

`python -m bench --help` lists the workloads; bench/README.md tells how to run them side by side.
"""
