"""The benchmark that ``edgekit benchmark`` and ``edgekit-agent bench`` share.

It times the agent's own runtime code (:mod:`device_agent.runtimes`), so what is measured is
what runs on the device. Modules: ``options`` (the one options model, validated once) and
``flags`` (the command-line flags both CLIs build it from), ``record`` (the frozen result record,
the JSON ``--json`` prints), ``stats`` (percentiles, stable warm-up), ``runner`` (one
model: load, first run, warm-up, timed runs, memory, operator profile), ``cost``
(MACs and parameters), ``hardware`` (this CPU's peak compute), ``pipeline``
(per-stage timing on a video), ``worker`` (one model in a fresh process).
"""
