"""Benchmarks for outagecomms: ``python -m bench [fanout|overhead|startup|memory|all]``.

Each benchmark prints its numbers and the command that produced them; none is
part of the test run (pytest only collects ``tests/``). Results and the
machine they were measured on are written up in ``bench/RESULTS.md``.

* ``fanout``   SMS and email through outagecomms ``send`` against local fake
  providers (a separate process), next to a synchronous SDK loop (the
  baseline) and a bare aiohttp client (the limit of this machine).
* ``overhead`` the same fan-out through an in-process transport that answers
  at once: only audience reading, rendering, planning and the ledger count.
* ``startup``  ``outagecomms --help`` and ``outagecomms preview`` wall time.
* ``memory``   peak RSS of ``send --sandbox`` with a 1,000,000-row audience.
"""
