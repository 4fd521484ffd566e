"""What every benchmark shares, so that each script in bench/ holds only its scenario and report.

* ``servers``: gunicorn, other server processes and job workers; a run's workspace
* ``sim``: the WeChat simulator as a process of its own, and its control API
* ``smsink``: the bank's SMS platform, played in a thread
* ``backend``: the bench account, the app's environment, PostgreSQL and Redis
* ``holders``: card holders seeded through the registry importer, bound directly
* ``load``: wrk, its Lua preamble and its report; ``callbacks`` and ``feed``: the
  signed requests of the callback and transaction-feed benchmarks
* ``proc`` and ``profile``: CPU, memory and process facts; py-spy samples
* ``stats``: percentiles; ``report``: log lines, PASS/FAIL, ratios, CPU costs
"""
